"""Fixtures for the MLflow UI tests: a populated sqlite store and `cmr-ray ui` serving it
on a free loopback port (always terminated)."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cmr_ray import tracking
from cmr_ray.config import load_config
from cmr_ray.tune.grid import expand_trials

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def populated(tmp_path, monkeypatch):
    """An MLflow store in tmp_path with a 'views' sweep: one parent, three finished children."""
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "views.yaml"
    exp.write_text("sweep:\n  trials:\n    - {data.views: 'cine:sax'}\n    - {data.views: 'lge:sax'}\n"
                   "    - {data.views: 'cine:sax+2ch+3ch+4ch|lge:sax+2ch+3ch+4ch', data.frames: 16}\n")
    trials = expand_trials(load_config(exp), str(exp))
    c = tracking.client()
    exp_id = tracking.ensure_experiment(c, "views")
    parent = tracking.start_parent(c, exp_id, "k", "views", {"sweep.metric": "val/rsum"})
    ids = []
    for t in trials:
        rid = tracking.ensure_child(c, exp_id, parent, t)
        tracking.set_status(c, rid, "RUNNING")
        for epoch in (1, 2, 3):
            tracking.log_metrics(c, rid, {"train/loss": 4.0 / epoch, "val/rsum": 40.0 * epoch * (t.index + 1)}, step=epoch)
        tracking.log_metrics(c, rid, {"test/rsum": 123.0 + t.index, "probe/hcm_auc": 0.8})
        tracking.set_status(c, rid, "FINISHED", outcome="completed")
        ids.append(rid)
    tracking.set_status(c, parent, "FINISHED")
    return dict(experiment_id=exp_id, parent=parent, runs=ids, names=[t.name for t in trials], cwd=tmp_path)


@pytest.fixture
def ui_server(populated):
    port = free_port()
    exe = Path(sys.executable).parent / "cmr-ray"
    log = open(populated["cwd"] / "ui.log", "w")
    proc = subprocess.Popen([str(exe), "ui", "--port", str(port)], cwd=populated["cwd"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"cmr-ray ui did not come up: {(populated['cwd'] / 'ui.log').read_text()[-2000:]}")
            time.sleep(1)
        yield dict(populated, port=port, proc=proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # cmr-ray ui stops its server's process group
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
