"""A tiny training run on a fake store: reports, checkpoints, resume, determinism, the CLI, and
a worker killed mid-epoch (Ray Train restarts it from the last checkpoint)."""
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.train.conftest import tiny_train_cfg

pytestmark = pytest.mark.integration

MLFLOW_KEY = re.compile(r"^[/\w.\- ]*$")


def history(result):
    from cmr_ray.train.checkpoint import read_state

    state, _ = read_state(result.checkpoint.path)
    return state["history"]


def test_train_checkpoint_resume_and_cli(ray_cluster, fake_store, tiny_text_model, tmp_path):
    from click.testing import CliRunner

    from cmr_ray.cli.train import train_cmd
    from cmr_ray.train import load_checkpoint, run_training

    storage = str(tmp_path / "runs")
    cfg = tiny_train_cfg(fake_store, tiny_text_model)
    r1 = run_training(cfg, storage_path=storage, name="resume", progress=False)
    assert r1.error is None
    m = r1.metrics
    assert m["epoch"] == 2
    for key in ("train/loss", "val/loss", "val/rsum", "val/t2v_r5", "val/v2t_r10", "val/t2v_medr"):
        assert key in m and m[key] == m[key], key  # present and not NaN
    assert all(MLFLOW_KEY.match(k) for k in m)
    assert m["val/studies"] == 12
    ckpt = Path(r1.checkpoint.path)
    assert (ckpt / "model.pt").exists() and (ckpt / "config.yaml").exists()
    kept = [p for p in Path(storage, "resume").glob("checkpoint_*") if p.is_dir()]
    assert 1 <= len(kept) <= cfg["train"]["keep_checkpoints"]
    h1 = history(r1)
    assert [e["epoch"] for e in h1] == [1, 2]

    model, saved_cfg = load_checkpoint(r1.checkpoint.path)
    assert saved_cfg["data"]["views"] == "cine:sax|lge:sax" and not model.training
    import torch

    emb = model.encode_video(torch.rand(2, 4, 32, 32))
    assert emb.shape == (2, 16)

    # started again with the same name and storage: continues after epoch 2, does not retrain
    cfg3 = tiny_train_cfg(fake_store, tiny_text_model, **{"train.epochs": 3})
    r2 = run_training(cfg3, storage_path=storage, name="resume", progress=False)
    assert r2.error is None and r2.metrics["epoch"] == 3
    h2 = history(r2)
    assert [e["epoch"] for e in h2] == [1, 2, 3] and h2[:2] == h1

    # the command line, same seed under another name: the very same losses (CPU determinism)
    exp = tmp_path / "tiny.yaml"
    sections = {s: dict(cfg[s]) for s in ("data", "model", "train")}
    exp.write_text(yaml.safe_dump(sections))
    out = CliRunner().invoke(train_cmd, [str(exp), "--storage-path", storage, "--name", "cli"])
    assert out.exit_code == 0, out.output
    assert "epoch 2" in out.output and "latest checkpoint:" in out.output
    ck = re.search(r"latest checkpoint: (\S+)", out.output).group(1)
    from cmr_ray.train.checkpoint import read_state

    h3 = read_state(ck)[0]["history"]
    assert [e["train/loss"] for e in h3] == [e["train/loss"] for e in h1]
    assert [e["val/rsum"] for e in h3] == [e["val/rsum"] for e in h1]


def test_cli_bad_store_is_one_line(tmp_path):
    from click.testing import CliRunner

    from cmr_ray.cli.train import train_cmd

    exp = tmp_path / "e.yaml"
    exp.write_text(yaml.safe_dump({"data": {"source": "dicom", "store": str(tmp_path / "nothing-here")}}))
    out = CliRunner().invoke(train_cmd, [str(exp)])
    assert out.exit_code == 2
    lines = [ln for ln in out.output.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1 and "data.store" in lines[0] and "store.json" in lines[0]


def test_killed_worker_resumes_from_last_checkpoint(ray_cluster, fake_store, tiny_text_model, tmp_path):
    from cmr_ray.train import run_training

    cfg = tiny_train_cfg(fake_store, tiny_text_model, **{"train.epochs": 3, "train.max_failures": 1})
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    box = {}

    def run():
        box["result"] = run_training(cfg, storage_path=str(tmp_path / "runs"), name="kill", progress=False,
                                     fault_hook={"dir": str(hook_dir), "epoch": 1, "wait_s": 300})

    th = threading.Thread(target=run)
    th.start()
    pid_file = hook_dir / "pid_0"
    deadline = time.time() + 600
    while not pid_file.exists() and time.time() < deadline and th.is_alive():
        time.sleep(0.5)
    assert pid_file.exists(), "the worker never reached epoch 2"
    time.sleep(0.5)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)  # mid-epoch: after epoch 1's checkpoint
    th.join(timeout=900)
    result = box["result"]
    assert result.error is None
    assert result.metrics["epoch"] == 3
    assert [e["epoch"] for e in history(result)] == [1, 2, 3]  # none lost, none twice
    starts = sorted(int(p.read_text()) for p in hook_dir.glob("start_0_*"))
    assert starts == [0, 1]  # first attempt from scratch, the restarted worker from epoch 1's checkpoint
