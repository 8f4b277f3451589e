import json
import sys

import click


@click.command("validate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--schema", "schema", is_flag=True,
              help="print the JSON Schema of an experiment file (for editors) and exit")
def validate_cmd(files, schema):
    """Check experiment YAML files without running anything: every key and value (probe
    tasks, baselines, few-shot sizes, sweep.metric and sweep.mode included) and the sweep's
    trials and baselines, as `cmr-ray sweep` and `cmr-ray train` check them before starting.
    Every problem in a file is one line.

    \b
    Examples:
      cmr-ray validate experiments/*.yaml
      cmr-ray validate --schema > cmr-ray.schema.json   # then, atop a YAML file:
        # yaml-language-server: $schema=cmr-ray.schema.json
    """
    from cmr_ray.config import ConfigError, json_schema, load_config, sweep_mode

    if schema:
        click.echo(json.dumps(json_schema(), indent=2))
        return
    if not files:
        raise click.UsageError("give experiment files to check, or --schema")
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
            for line in e.problems:
                click.echo(f"error {line}", err=True)
            continue
        click.echo(f"ok    {f} ({len(trials)} trial(s); sweep.metric {cfg.sweep.metric}, "
                   f"{sweep_mode(cfg)})")
    sys.exit(2 if bad else 0)  # bad input, as every command exits on it (cmr_ray.cli)


COMMANDS = [validate_cmd]
