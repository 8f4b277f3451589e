"""`cmr-ray inspect`, `cmr-ray prepare`, `cmr-ray show`: DICOM in, clip store out."""
from __future__ import annotations

import sys

import click

from cmr_ray.cli import InputError, dashboard_option


@click.command("inspect")
@click.argument("dicom_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="write the table as .csv or .parquet")
@click.option("--store", help="use this store's salt, so study keys match the store's")
def inspect_cmd(dicom_dir, out, store):
    """Classify every series from headers only (no pixels); one row per series.

    \b
    Example:
      cmr-ray inspect cohort/dicom --out series.csv
    """
    from cmr_ray.data.inspect import check_out, scan_dir, table_text, write_rows

    if out:
        try:
            check_out(out)  # before the scan
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    res = scan_dir(dicom_dir, store=store)
    rows = res.rows
    if not rows:
        what = "no files" if not res.files else f"{res.files} file(s), none of them an MR image series"
        for line in res.notes():
            click.echo(line, err=True)
        raise click.ClickException(f"{dicom_dir}: {what}; nothing to inspect")
    click.echo(table_text(rows))
    for line in res.notes():
        click.echo(line, err=True)
    if out:
        try:
            write_rows(rows, out)
        except (ValueError, OSError) as e:
            raise click.ClickException(f"--out {out}: {getattr(e, 'strerror', None) or e}") from None
        click.echo(f"wrote {len(rows)} series to {out}", err=True)


@click.command("prepare")
@click.argument("dicom_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dicom", "acdc", "mnms"]), default="dicom", show_default=True,
              help="dicom: DICOM studies + reports; acdc / mnms: the public sets in their own NIfTI layout")
@click.option("--reports", type=click.Path(exists=True, dir_okay=False),
              help="CSV with accession_number, report_text (required for --format dicom)")
@click.option("--out", "out", required=True, help="store directory or s3:// URI")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="labels CSV (optional)")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False),
              help="experiment YAML (data.image_size, data.views, split fractions)")
@click.option("--image-size", type=int, help="frame size in pixels (overrides data.image_size)")
@click.option("--address", help="join an existing Ray cluster (default: start a local one)")
@dashboard_option
@click.option("--num-cpus", type=int, help="CPUs for the local Ray (at least 1); acdc/mnms: decoding processes (default: all cores)")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="acdc/mnms: seed of the train/val draw (and of the whole split when the folders give none)")
def prepare_cmd(dicom_dir, fmt, reports, out, labels, config, image_size, address, num_cpus, split_seed):
    """Decode DICOM studies (or ACDC / M&Ms NIfTI) once into the de-identified clip store.

    Writes STORE/shards/*.parquet, STORE/manifest.parquet (one row per input file) and
    STORE/store.json.  Re-running is a no-op; new studies are added incrementally.
    With --format acdc (or mnms) DICOM_DIR is the dataset's folder: each patient's 4D cine
    becomes a cine_sax row labelled with its group (docs/acdc.md); the store is rewritten.

    \b
    Example:
      cmr-ray prepare cohort/dicom --reports cohort/reports.csv --labels cohort/labels.csv \\
          --out store --num-cpus 2
      cmr-ray prepare ACDC/database --format acdc --out store_acdc
    """
    from cmr_ray.config import ConfigError, load_config
    from cmr_ray.data.prepare import PrepareError, prepare
    from cmr_ray.data.storefs import store_place_problem
    from cmr_ray.data.tables import TableError

    # requests that cannot work are refused in one line before anything starts (no Ray)
    if num_cpus is not None and num_cpus < 1:
        raise click.ClickException(f"--num-cpus {num_cpus}: must be at least 1 (every prepare task needs a CPU)")
    problem = store_place_problem(out, dicom_dir)
    if problem:
        raise click.ClickException(problem)
    if fmt == "dicom" and not reports:
        raise click.UsageError("Missing option '--reports' (required for --format dicom).")
    if fmt != "dicom" and (reports or labels or address):
        given = ", ".join(n for n, v in (("--reports", reports), ("--labels", labels), ("--address", address)) if v)
        raise click.UsageError(f"{given}: not used with --format {fmt} (groups come from the dataset itself)")
    try:
        cfg = load_config(config, {"data.image_size": image_size} if image_size else None)
    except ConfigError as e:
        raise InputError(str(e)) from None
    if fmt != "dicom":
        from cmr_ray.data.acdc import prepare_nifti

        try:
            import os

            summary = prepare_nifti(dicom_dir, out, fmt=fmt, cfg=cfg, num_cpus=num_cpus or os.cpu_count(),
                                    seed=split_seed)
        except (PrepareError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from None
        click.echo(summary.text)
        if not summary.ok:
            click.echo(f"error: no usable study (see {summary.store}/manifest.parquet for each file's reason)", err=True)
            sys.exit(1)
        return
    try:
        summary = prepare(dicom_dir, reports, out, labels=labels, cfg=cfg, address=address,
                          num_cpus=num_cpus)
    except (PrepareError, TableError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        _shutdown_ray()
    click.echo(summary.text)
    if not summary.ok:
        click.echo(f"error: no usable study (see {summary.store}/manifest.parquet for each file's reason)", err=True)
        sys.exit(1)


@click.command("show")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
@click.option("--image-size", type=int, default=128, show_default=True, help="tile size in pixels")
@click.option("--phases", type=int, default=12, show_default=True, help="cine phases shown per view")
def show_cmd(study_dir, out, image_size, phases):
    """Montage of one study: every recognised series labelled with its sequence/view.

    \b
    Example:
      cmr-ray show cohort/dicom/study-0003 --out study.png
    """
    from cmr_ray.viz.montage import show_study

    n = show_study(study_dir, out, size=image_size, phases=phases)
    if n == 0:
        raise click.ClickException(f"{study_dir}: no cine or LGE series recognised")
    click.echo(f"wrote {out} ({n} series)")


def _shutdown_ray():
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


COMMANDS = [inspect_cmd, prepare_cmd, show_cmd]
