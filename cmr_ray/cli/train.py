import sys

import click

from cmr_ray.cli import InputError, dashboard_option


@click.command("train")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3")
@click.option("--address", default=None, help="join this Ray cluster (default: start a local, loopback-only Ray)")
@dashboard_option
@click.option("--storage-path", default=None, help="Ray Train storage, local dir or s3:// (default: train.storage_path)")
@click.option("--name", default=None, help="run name (default: train.name); the same name and storage resumes")
def train_cmd(experiment, overrides, address, storage_path, name):
    """Contrastive pretraining of the video and text towers on Ray Train.

    \b
    Examples:
      cmr-ray train experiments/base.yaml
      cmr-ray train experiments/base.yaml --set train.epochs=3 --set train.workers=2 --name quick
    Started again with the same --name and --storage-path, a run continues from its latest
    checkpoint.  A missing store is built first (the synthetic cohort, or data.dicom_dir).
    """
    from cmr_ray.config import ConfigError, load_config
    from cmr_ray.model.text import TextModelError
    from cmr_ray.train.trainer import TrainingSetupError, run_training

    try:
        cfg = load_config(experiment, list(overrides))
    except ConfigError as e:
        raise InputError(str(e)) from None
    try:  # a synthetic (or DICOM) source whose store is missing is built first, as `sweep` does
        from cmr_ray.data.ensure import ensure_store

        ensure_store(cfg, address=address, echo=lambda msg: click.echo(f"[cmr-ray train] {msg}"))
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    run = name or cfg.train.name
    click.echo(f"[cmr-ray train] {cfg.data.views} × {cfg.data.frames} frames, store "
               f"{cfg.data.store}, {cfg.train.epochs} epochs on {cfg.train.workers} worker(s); "
               f"run '{run}' in {storage_path or cfg.train.storage_path}")
    try:
        result = run_training(cfg, storage_path=storage_path, name=name, address=address)
    except (TrainingSetupError, TextModelError) as e:
        raise InputError(str(e)) from None
    if result.error:
        click.echo(f"error: training failed: {result.error}", err=True)
        sys.exit(1)
    m = result.metrics or {}
    click.echo(f"[cmr-ray train] done: epoch {m.get('epoch')}  val/rsum {m.get('val/rsum', float('nan')):.1f}  "
               f"val/loss {m.get('val/loss', float('nan')):.4f}")
    if result.checkpoint is not None:
        click.echo(f"[cmr-ray train] latest checkpoint: {result.checkpoint.path}")
    if getattr(result, "best_checkpoints", None):
        from cmr_ray.config import sweep_mode
        from cmr_ray.train.trainer import best_checkpoint, evaluated_checkpoint

        metric = cfg.sweep.metric
        ckpt, bm = best_checkpoint(result, metric, sweep_mode(cfg))
        click.echo(f"[cmr-ray train] best checkpoint ({metric} {bm.get(metric, float('nan')):.4g}, "
                   f"{sweep_mode(cfg)}): {ckpt.path}")
        scored, _ = evaluated_checkpoint(result, cfg)
        click.echo(f"[cmr-ray train] checkpoint a sweep trial scores (eval.checkpoint {cfg.eval.checkpoint}): {scored.path}")
    click.echo(f"[cmr-ray train] run directory: {result.path}")


COMMANDS = [train_cmd]
