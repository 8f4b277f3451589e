import sys

import click


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate_cmd(files):
    """Check experiment YAML files without running anything.

    \b
    Example:
      cmr-ray validate experiments/*.yaml
    """
    from cmr_ray.config import ConfigError, load_config

    bad = 0
    for f in files:
        try:
            load_config(f)
            click.echo(f"ok    {f}")
        except ConfigError as e:
            bad += 1
            click.echo(f"error {e}", err=True)
    sys.exit(1 if bad else 0)


COMMANDS = [validate_cmd]
