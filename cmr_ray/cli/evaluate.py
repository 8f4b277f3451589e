"""`cmr-ray eval`: evaluate a checkpoint and print the paper's tables."""
from __future__ import annotations

import click

from cmr_ray.cli import InputError


@click.command("eval")
@click.argument("checkpoint")
@click.option("--store", default=None, help="clip store, local dir or s3:// (default: the checkpoint's data.store)")
@click.option("--out", "out_dir", default="eval_out", show_default=True, type=click.Path(file_okay=False),
              help="where tables (Markdown, CSV), plots (PNG) and metrics.json go")
@click.option("--baselines", default=None, metavar="LIST",
              help="comma-separated: zeroshot, simclr; 'none' for none (default: eval.baselines)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key over the checkpoint's, e.g. eval.few_shot=[1,4]")
def eval_cmd(checkpoint, store, out_dir, baselines, overrides):
    """Retrieval, linear/few-shot probes, zero-shot prompts and baselines for a checkpoint.

    CHECKPOINT is a checkpoint directory (model.pt + config.yaml), a Ray Train run
    directory (its newest checkpoint is used) or an s3:// URI.

    \b
    Examples:
      cmr-ray eval ray_results/cmr-clip/checkpoint_000019 --store cmr_store/synthetic-small
      cmr-ray eval ray_results/cmr-clip --baselines zeroshot,simclr --out eval_out
    """
    from cmr_ray.config import ConfigError
    from cmr_ray.data.reader import StoreError
    from cmr_ray.eval.evaluation import evaluate
    from cmr_ray.train.checkpoint import CheckpointError

    if baselines is not None and baselines.strip().lower() in ("", "none"):
        baselines = []
    try:
        evaluate(checkpoint, store, out_dir, baselines=baselines, overrides=list(overrides))
    except (ConfigError, CheckpointError, StoreError, ValueError, FileNotFoundError) as e:
        raise InputError(str(e)) from None
    click.echo(open(f"{out_dir}/tables.md").read())
    click.echo(f"[cmr-ray eval] tables, plots and metrics.json in {out_dir}")


COMMANDS = [eval_cmd]
