"""`cmr-ray synth`: write the synthetic CMR cohort (DICOM studies, reports, labels)."""
from __future__ import annotations

import click


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--studies", type=click.IntRange(min=1), default=800, show_default=True, help="number of studies")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="same seed, same bytes")
@click.option("--preset", type=click.Choice(["small", "paper"]), default="small", show_default=True,
              help="small: 96 px, 10x12 cine SAX, about 163 images/study; paper: 256 px, 12x25, 416 images/study")
@click.option("--workers", type=click.IntRange(min=1), help="processes (default: all cores)")
@click.option("--overwrite", is_flag=True, help="replace an existing, different cohort in OUT")
def synth_cmd(out, studies, seed, preset, workers, overwrite):
    """Write a synthetic CMR cohort: DICOM studies, reports and labels.

    Writes OUT/dicom/<study>/<series>/*.dcm, OUT/reports.csv (accession_number,
    report_text), OUT/labels.csv (labels and generating parameters), OUT/phi.json (every
    fake PHI string written) and OUT/cohort.json.  Re-running with the same arguments
    is a no-op.

    \b
    Example:
      cmr-ray synth cohort --studies 800 --seed 0
      cmr-ray prepare cohort/dicom --reports cohort/reports.csv --out store
    """
    from cmr_ray.synth import generate_cohort

    try:
        summary = generate_cohort(out, studies, seed, preset=preset, workers=workers, progress=True, overwrite=overwrite)
    except (FileExistsError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    counts = ", ".join(f"{k} {v}" for k, v in summary["pathologies"].items())
    click.echo(f"{out}: {summary['studies']} studies, {summary['files']} files ({counts})")
    click.echo(f"  reports {out}/reports.csv  labels {out}/labels.csv  PHI ledger {out}/phi.json")


COMMANDS = [synth_cmd]
