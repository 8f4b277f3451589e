"""`cmr-ray synth`: write the synthetic CMR cohort (DICOM studies, reports, labels)."""
from __future__ import annotations

import click


def _renamed_flag(ctx, param, value):
    """The old `--preset` flag: refused, naming the new one (never read as `--protocol`)."""
    if value is not None:
        raise click.UsageError(f"--preset was renamed to --protocol (use --protocol {value})", ctx=ctx)


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dicom", "acdc"]), default="dicom", show_default=True,
              help="dicom: the full cohort; acdc: its cine short axis in ACDC's NIfTI layout (docs/acdc.md)")
@click.option("--studies", type=click.IntRange(min=1), help="number of studies  [default: 800; 150 with --format acdc]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="same seed, same bytes")
@click.option("--protocol", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="acquisition protocol (data.synth_protocol): small: 96 px, 10x12 cine SAX, about 163 "
                   "images/study; paper: 256 px, 12x25, 416 images/study")
@click.option("--preset", hidden=True, expose_value=False, callback=_renamed_flag, help="renamed: --protocol")
@click.option("--site", type=click.Choice(["internal", "external"]), default="internal", show_default=True,
              help="external: a cohort from another hospital (vendor mix, field strength, matrix, noise, "
                   "pathology mix and report style of its own; the same findings code labels it)")
@click.option("--workers", type=click.IntRange(min=1), help="processes (default: all cores)")
@click.option("--overwrite", is_flag=True, help="replace an existing, different cohort in OUT")
def synth_cmd(out, fmt, studies, seed, protocol, site, workers, overwrite):
    """Write a synthetic CMR cohort: DICOM studies, reports and labels.

    Writes OUT/dicom/<study>/<series>/*.dcm, OUT/reports.csv (accession_number,
    report_text), OUT/labels.csv (labels and generating parameters), OUT/phi.json (every
    fake PHI string written) and OUT/cohort.json.  Re-running with the same arguments
    is a no-op.

    \b
    With --format acdc: OUT/training/patientNNN/ and OUT/testing/patientNNN/ (Info.cfg,
    patientNNN_4d.nii.gz, ED/ES frames), the same patients' cine short axis and groups.

    \b
    Example:
      cmr-ray synth cohort --studies 800 --seed 0
      cmr-ray prepare cohort/dicom --reports cohort/reports.csv --out store
      cmr-ray synth external --site external --studies 150 --seed 1
      cmr-ray synth --format acdc acdc --studies 150
      cmr-ray prepare acdc --format acdc --out store_acdc
    """
    if fmt == "acdc" and site != "internal":
        raise click.UsageError("--site external writes DICOM only (not with --format acdc)")
    if fmt == "acdc":
        from cmr_ray.synth.acdc import generate_acdc

        try:
            s = generate_acdc(out, studies or 150, seed, protocol=protocol, workers=workers, progress=True,
                              overwrite=overwrite)
        except (FileExistsError, ValueError) as e:
            raise click.UsageError(str(e)) from None
        counts = ", ".join(f"{k} {v}" for k, v in s["groups"].items())
        click.echo(f"{out}: {s['studies']} patients in ACDC layout (training {s['training']}, "
                   f"testing {s['testing']}; {counts})")
        return
    studies = studies or 800
    from cmr_ray.synth import generate_cohort

    try:
        summary = generate_cohort(out, studies, seed, protocol=protocol, workers=workers, progress=True, overwrite=overwrite,
                                  site=site)
    except (FileExistsError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    counts = ", ".join(f"{k} {v}" for k, v in summary["pathologies"].items())
    click.echo(f"{out}: {summary['studies']} studies, {summary['files']} files ({counts})"
               + (f", site {site}" if site != "internal" else ""))
    click.echo(f"  reports {out}/reports.csv  labels {out}/labels.csv  PHI ledger {out}/phi.json")


COMMANDS = [synth_cmd]
