"""The `cmr-ray` command line.  Each command lives in a small module here and holds no
logic of its own: it parses options and calls into the package.

Exit codes, the same in every command: 0 done; 1 the work ran and failed (a trial that did
not finish, no usable study); 2 bad input refused before any work (a config error, as click
gives for a bad option: `InputError`)."""
from __future__ import annotations

import os
import sys

import click

from cmr_ray import __version__


class InputError(click.ClickException):
    """Bad input refused before any work: one line "Error: ..." per problem (a config file
    with three mistakes gives three), exit code 2 in every command."""

    exit_code = 2

    def format_message(self) -> str:
        return "\nError: ".join(self.message.splitlines())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cmr-ray")
def main():
    """cmr-ray: contrastive pretraining of cardiac MRI video and report text on Ray.

    \b
    Typical flow:
      cmr-ray synth cohort --studies 800 --seed 0      # embedded synthetic cohort
      cmr-ray prepare cohort/dicom --reports cohort/reports.csv --out store
      cmr-ray sweep experiments/views.yaml             # train + eval every trial, log to MLflow
      cmr-ray report views                             # paper-style tables from MLflow
    """
    # Ray reads its bind policy when it is first imported: a Ray this command starts by
    # itself must stay on 127.0.0.1, unless the user joins a cluster with --address.
    joins = os.environ.get("RAY_ADDRESS") or any(a.startswith("--address") for a in sys.argv[1:])
    if not joins:
        from cmr_ray.runtime import local_env

        local_env(loopback=True)


def dashboard_option(f):
    """`--dashboard/--no-dashboard` on a command that starts Ray: sets CMR_RAY_DASHBOARD for
    the Ray it starts (`cmr_ray.runtime.init_ray`); left out, the variable decides (on)."""
    from cmr_ray.runtime import DASHBOARD_ENV, dashboard_wanted

    def switch(ctx, param, value):
        if value is not None:
            os.environ[DASHBOARD_ENV] = "1" if value else "0"
        try:
            dashboard_wanted()
        except ValueError as e:
            raise InputError(str(e)) from None
        return value

    return click.option("--dashboard/--no-dashboard", default=None, expose_value=False, callback=switch,
                        help=f"Ray's dashboard on 127.0.0.1 for a local Ray (default: on; {DASHBOARD_ENV}=0 "
                             "turns it off)")(f)


def _register():
    from cmr_ray.cli import evaluate, ingest, sweep, synth, train, validate

    for mod in (synth, ingest, train, evaluate, sweep, validate):
        for cmd in mod.COMMANDS:
            main.add_command(cmd)


_register()
