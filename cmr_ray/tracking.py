"""MLflow bookkeeping for sweeps: where runs go, and how sweep and trial runs are found again.

    from cmr_ray import tracking
    client = tracking.client()                       # sqlite:///<cwd>/mlflow.db by default
    exp_id = tracking.ensure_experiment(client, "views")
    parent = tracking.start_parent(client, exp_id, sweep_key="ab12…", name="views", params={...})
    run_id = tracking.ensure_child(client, exp_id, parent, trial)   # one per trial key
    tracking.log_metrics(client, run_id, {"val/rsum": 250.0}, step=3)

Layout: one experiment per experiment file, one parent run per sweep (tag
`cmr.kind=sweep`, `cmr.sweep_key`), one child run per trial nested under it
(`mlflow.parentRunId`, `cmr.trial_key`).  A child run is created SCHEDULED before its
trial starts, so a resumed sweep finds it by trial key and reuses it: a trial never gets
a second run.  Params are the flattened resolved config (`data.views`, `model.temperature`
…); metrics only keys MLflow accepts (`test/t2v_r5`, `probe/hcm_auc`, …).  No report text
goes into params, tags or artifacts.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from cmr_ray.config import flatten
from cmr_ray.eval.evaluation import METRIC_KEY  # the one pattern of an MLflow-safe metric key

ACTIVE_STATES = ("RUNNING", "SCHEDULED")


def default_tracking_uri(cwd: str | os.PathLike | None = None) -> str:
    return f"sqlite:///{Path(cwd or os.getcwd()).resolve() / 'mlflow.db'}"


def default_artifact_root(cwd: str | os.PathLike | None = None) -> Path:
    return Path(cwd or os.getcwd()).resolve() / "mlartifacts"


def resolve_uri(uri: str | None) -> str:
    """`None` -> the working directory's sqlite file; a bare file path is made a sqlite URI."""
    if not uri:
        return default_tracking_uri()
    if "://" not in uri and not uri.startswith("databricks"):
        p = Path(uri).resolve()
        if p.is_dir():
            raise ValueError(f"--tracking-uri {uri}: a directory (file store) is not supported; give sqlite:///PATH.db or http://HOST:PORT")
        return f"sqlite:///{p}"
    return uri


def is_local_db(uri: str) -> bool:
    return uri.startswith("sqlite:")


def client(uri: str | None = None) -> MlflowClient:
    import mlflow

    uri = resolve_uri(uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(c: MlflowClient, name: str, artifact_root: str | os.PathLike | None = None) -> str:
    """The experiment's id, created if missing.  With a local sqlite store, artifacts go to
    `<cwd>/mlartifacts/<name>` unless `artifact_root` says otherwise; a server decides itself."""
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = None
    if is_local_db(c.tracking_uri):
        root = Path(artifact_root) if artifact_root else default_artifact_root()
        location = (root / re.sub(r"[^\w.\-]", "_", name)).resolve().as_uri()
    return c.create_experiment(name, artifact_location=location)


def _chunks(items: list, n: int = 100):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _param_value(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def log_params(c: MlflowClient, run_id: str, params: dict) -> None:
    ps = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    for chunk in _chunks(ps):
        c.log_batch(run_id, params=chunk)


def metric_items(metrics: dict) -> dict[str, float]:
    """The numeric entries MLflow can take as metrics (finite numbers, valid key names)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not METRIC_KEY.match(str(k)):
            continue
        if math.isfinite(v):
            out[str(k)] = float(v)
    return out


def log_metrics(c: MlflowClient, run_id: str, metrics: dict, step: int = 0) -> None:
    import time

    now = int(time.time() * 1000)
    ms = [Metric(k, v, now, step) for k, v in sorted(metric_items(metrics).items())]
    for chunk in _chunks(ms, 500):
        c.log_batch(run_id, metrics=chunk)


def _search(c: MlflowClient, exp_id: str, filt: str) -> list:
    return c.search_runs([exp_id], filter_string=filt, max_results=5000, order_by=["attributes.start_time DESC"])


def find_parent(c: MlflowClient, exp_id: str, sweep_key: str):
    """The latest sweep run with this sweep key, or None."""
    runs = _search(c, exp_id, f"tags.`cmr.kind` = 'sweep' and tags.`cmr.sweep_key` = '{sweep_key}'")
    return runs[0] if runs else None


def latest_parent(c: MlflowClient, exp_id: str):
    runs = _search(c, exp_id, "tags.`cmr.kind` = 'sweep'")
    return runs[0] if runs else None


def start_parent(c: MlflowClient, exp_id: str, sweep_key: str, name: str, params: dict, tags: dict | None = None) -> str:
    run = c.create_run(exp_id, run_name=name, tags={"cmr.kind": "sweep", "cmr.sweep_key": sweep_key, **(tags or {})})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def children(c: MlflowClient, exp_id: str, parent_id: str) -> list:
    """Every child run of this parent, newest first."""
    return _search(c, exp_id, f"tags.`mlflow.parentRunId` = '{parent_id}'")


def child_runs(c: MlflowClient, exp_id: str, parent_id: str) -> dict[str, Any]:
    """Trial key -> child run of this parent."""
    return {r.data.tags.get("cmr.trial_key"): r for r in children(c, exp_id, parent_id)}


def ensure_child(c: MlflowClient, exp_id: str, parent_id: str, trial, existing: dict | None = None) -> str:
    """The trial's child run: the existing one for its key, or a new SCHEDULED one with the
    flattened config as params."""
    existing = child_runs(c, exp_id, parent_id) if existing is None else existing
    if trial.key in existing:
        return existing[trial.key].info.run_id
    tags = {
        "mlflow.parentRunId": parent_id,
        "cmr.kind": "trial",
        "cmr.trial_key": trial.key,
        "cmr.trial_index": str(trial.index),
        "cmr.paper_views": trial.name.split(" | ")[0],
    }
    run = c.create_run(exp_id, run_name=trial.name, tags=tags)
    c.update_run(run.info.run_id, status="SCHEDULED")
    log_params(c, run.info.run_id, flatten(trial.cfg))
    return run.info.run_id


def set_status(c: MlflowClient, run_id: str, status: str, **tags: str) -> None:
    for k, v in tags.items():
        c.set_tag(run_id, f"cmr.{k}", str(v))
    if status in ACTIVE_STATES:
        c.update_run(run_id, status=status)
    else:
        c.set_terminated(run_id, status=status)


def close_sweep(c: MlflowClient, exp_id: str, parent_id: str, status: str, outcome: str) -> list[str]:
    """End a sweep that stopped on an error (`status` FAILED) or an interrupt (KILLED): every
    child run still RUNNING or SCHEDULED and the parent get `status` and `cmr.outcome`;
    finished children keep theirs.  Returns the run ids it ended."""
    ended = []
    for run in children(c, exp_id, parent_id):
        if run.info.status in ACTIVE_STATES:
            set_status(c, run.info.run_id, status, outcome=outcome)
            ended.append(run.info.run_id)
    set_status(c, parent_id, status, outcome=outcome)
    return [*ended, parent_id]


def max_step(c: MlflowClient, run_id: str, key: str) -> int:
    hist = c.get_metric_history(run_id, key)
    return max((m.step for m in hist), default=-1)


def ui_command(uri: str | None, host: str = "127.0.0.1", port: int = 5000, artifact_root=None) -> list[str]:
    """The `mlflow server` argument list serving this store (no shell string)."""
    import sys

    uri = resolve_uri(uri)
    root = Path(artifact_root) if artifact_root else default_artifact_root()
    return [
        sys.executable, "-m", "mlflow", "server",
        "--workers", "1",
        "--host", host,
        "--port", str(int(port)),
        "--backend-store-uri", uri,
        "--artifacts-destination", str(root),
    ]


def ui_env() -> dict:
    env = dict(os.environ)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return env
