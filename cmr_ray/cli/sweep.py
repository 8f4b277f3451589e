"""`cmr-ray sweep`, `cmr-ray report`, `cmr-ray ui`: sweeps, their tables, and the MLflow UI."""
from __future__ import annotations

import click

from cmr_ray.cli import InputError, dashboard_option
from cmr_ray.config import ConfigError


@click.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=3")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
@click.option("--address", default=None, help="Ray cluster to join (default: start a local, loopback-only Ray)")
@dashboard_option
@click.option("--resume", is_flag=True, help="continue the interrupted sweep: run only its unfinished trials")
def sweep_cmd(experiment, overrides, tracking_uri, address, resume):
    """Train and evaluate every trial of EXPERIMENT.yaml on Ray Tune; log to MLflow."""
    from cmr_ray.tune import run_sweep

    try:
        out = run_sweep(experiment, overrides, tracking_uri=tracking_uri, address=address, resume=resume)
    except (ConfigError, FileNotFoundError, LookupError) as e:
        raise InputError(str(e)) from None
    if any(s != "FINISHED" for s in out["status"].values()):
        raise SystemExit(1)


@click.command("report")
@click.argument("experiment")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
@click.option("--run", "parent_id", multiple=True,
              help="a sweep's parent run id (default: the latest sweep); several --run are read as one sweep "
                   "(seeds run later on the same store join the first sweep's rows)")
@click.option("--compare", nargs=2, default=None, metavar="RUN_A RUN_B",
              help="print the paired difference A − B of every test metric of two child runs (of this or "
                   "another experiment of the store, on the same test studies), with its 95% interval")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="also write the RSUM figure (logged to the parent run as report/rsum_intervals.png) here")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=1),
              help="bootstrap resamples of the paired intervals")
def report_cmd(experiment, tracking_uri, parent_id, compare, plot_path, resamples):
    """Print the paper-style tables (Table 4, Table 5) of EXPERIMENT's sweep from MLflow, as Markdown.

    EXPERIMENT is the MLflow experiment name (an experiment file's stem, e.g. views) or the file.
    Rows are paired by the test studies they share: Table 4 gives each row's RSUM difference
    from the best row with its paired 95% interval (≈: not distinguishable from the best), and
    the RSUM figure is logged to the sweep's parent run.  With --compare RUN_A RUN_B, only the
    paired differences of the two runs are printed.

    Several --run are read as one sweep, e.g. make run's seed 0 and seeds added later on the
    same store: cmr-ray sweep experiments/views.yaml --set 'sweep.seeds=[1,2]' --set 'sweep.baselines=[]',
    then cmr-ray report views --run FIRST_PARENT --run SECOND_PARENT."""
    from pathlib import Path

    from cmr_ray import tracking
    from cmr_ray.tune.report import render_compare, render_report

    name = experiment
    if experiment.endswith((".yaml", ".yml")):
        from cmr_ray.config import load_config

        try:
            name = load_config(experiment)["sweep"]["experiment"]
        except ConfigError as e:
            raise InputError(str(e)) from None
    if tracking_uri is None and not Path("mlflow.db").exists():
        raise click.ClickException(f"no MLflow store here ({tracking.default_tracking_uri()}); run a sweep first or pass --tracking-uri")
    c = tracking.client(tracking_uri)
    try:
        if compare:
            click.echo(render_compare(c, name, *compare, resamples=resamples))
        else:
            click.echo(render_report(c, name, list(parent_id) or None, plot_path=plot_path, resamples=resamples))
    except (LookupError, ValueError) as e:
        raise click.ClickException(str(e)) from None


@click.command("ui")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (keep 127.0.0.1 unless you mean it)")
@click.option("--tracking-uri", default=None, help="backend store (default: sqlite:///<cwd>/mlflow.db)")
def ui_cmd(port, host, tracking_uri):
    """Serve the MLflow UI on the sweep's store (bound to 127.0.0.1 by default)."""
    import os
    import signal
    import subprocess

    from cmr_ray import tracking

    args = tracking.ui_command(tracking_uri, host=host, port=port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding the MLflow UI to {host}: anyone who can reach it sees every run", err=True)
    click.echo(f"MLflow UI on http://{host}:{port} (store {tracking.resolve_uri(tracking_uri)}); Ctrl-C stops it", err=True)
    # Own process group: stopping `cmr-ray ui` (Ctrl-C or SIGTERM) stops the server and its workers.
    proc = subprocess.Popen(args, env=tracking.ui_env(), start_new_session=True)

    def stop(*_):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        raise SystemExit(proc.wait())
    except KeyboardInterrupt:
        stop()

COMMANDS = [sweep_cmd, report_cmd, ui_cmd]
