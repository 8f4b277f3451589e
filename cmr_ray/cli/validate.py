import sys

import click


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate_cmd(files):
    """Check experiment YAML files without running anything: every key and value (probe
    tasks, baselines, few-shot sizes, sweep.metric and sweep.mode included) and the sweep's
    trials and baselines, as `cmr-ray sweep` and `cmr-ray train` check them before starting.

    \b
    Example:
      cmr-ray validate experiments/*.yaml
    """
    from cmr_ray.config import ConfigError, load_config, sweep_mode
    from cmr_ray.tune.baselines import expand_baselines
    from cmr_ray.tune.grid import expand_trials

    bad = 0
    for f in files:
        try:
            cfg = load_config(f)
            trials = expand_trials(cfg, src=str(f))
            expand_baselines(cfg, src=str(f))
        except ConfigError as e:
            bad += 1
            click.echo(f"error {e}", err=True)
            continue
        click.echo(f"ok    {f} ({len(trials)} trial(s); sweep.metric {cfg['sweep']['metric']}, "
                   f"{sweep_mode(cfg)})")
    sys.exit(2 if bad else 0)  # bad input, as every command exits on it (cmr_ray.cli)


COMMANDS = [validate_cmd]
