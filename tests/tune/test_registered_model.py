"""The registered model loads without unpickling anything (issue 16, item 9): the sweep logs
the best trial as safetensors weights plus the resolved config (cmr_ray.tune.mlflow_model),
registers it, and a fresh Python, with pickle and torch.load disabled, loads it from the
registry and embeds a clip exactly as the trained model does.  No Ray: `_log_best_model` on
a real sqlite MLflow store, with one FINISHED trial run pointing at a real checkpoint."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmr_ray import tracking
from conftest import make_store

REPO = Path(__file__).resolve().parents[2]
LOAD_IN_A_FRESH_PROCESS = """
import json, pickle, sys
import numpy as np, torch

def refuse(*a, **k):
    raise AssertionError("the registered model tried to unpickle")

class RefusingUnpickler(pickle.Unpickler):
    load = refuse

pickle.load = pickle.loads = torch.load = refuse
pickle.Unpickler = RefusingUnpickler
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}/1")
emb = model.predict(np.load(sys.argv[3]))
print("EMB " + json.dumps(emb.tolist()))
"""


@pytest.fixture
def tiny_model_cfg(tmp_path_factory):
    from cmr_ray.config import load_config
    from tests.model.fakes import write_tiny_text_model

    text = write_tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))
    return load_config(None, {"data.image_size": 32, "data.frames": 4, "model.hidden_size": 32,
                              "model.layers": 1, "model.heads": 2, "model.patch_size": 16,
                              "model.embed_dim": 16, "model.text_model": text})


def test_the_registered_model_loads_in_a_fresh_process_without_pickle(workdir, tiny_model_cfg, caplog, capfd):
    import torch

    from cmr_ray.config import load_config
    from cmr_ray.model import build_model
    from cmr_ray.train.checkpoint import save_checkpoint
    from cmr_ray.tune.sweep import _log_best_model

    torch.manual_seed(1)
    model = build_model(tiny_model_cfg).eval()
    save_checkpoint(workdir / "ckpt", model, None, None, epoch=1, cfg=tiny_model_cfg)
    make_store(workdir / "store")
    sweep_cfg = load_config(None, {"data.store": "store", "sweep.register_model": "cmr-clip-test",
                                   "sweep.experiment": "regtest"})
    uri = tracking.default_tracking_uri(workdir)
    c = tracking.client(uri)
    exp_id = tracking.ensure_experiment(c, "regtest")
    parent = tracking.start_parent(c, exp_id, "k", "regtest", {})
    run = c.create_run(exp_id, run_name="trial", tags={"mlflow.parentRunId": parent, "cmr.trial_key": "t0"})
    tracking.log_metrics(c, run.info.run_id, {f"best/{sweep_cfg['sweep']['metric']}": 1.0})
    c.set_tag(run.info.run_id, "cmr.checkpoint_path", str(workdir / "ckpt"))
    tracking.set_status(c, run.info.run_id, "FINISHED")

    lines = []
    with caplog.at_level(logging.INFO):
        assert _log_best_model(c, exp_id, parent, sweep_cfg, None, lines.append) == run.info.run_id
    logged = caplog.text + "".join(capfd.readouterr())
    assert "registered as 'cmr-clip-test'" in lines[-1]
    assert "pickle" not in logged.lower(), logged  # MLflow's "Saving pytorch model by Pickle ..." warning

    files = {p.relative_to(workdir / "mlartifacts").as_posix() for p in (workdir / "mlartifacts").rglob("*")
             if p.is_file() and "/model/" in p.as_posix()}
    names = {f.split("/model/", 1)[1] for f in files}
    assert {"MLmodel", "data/model/weights.safetensors", "data/model/config.yaml", "data/model/config.json"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".pth", ".pt"))], names
    assert [v.run_id for v in c.search_model_versions("name = 'cmr-clip-test'")] == [run.info.run_id]

    clip = np.random.default_rng(0).random((2, 4, 32, 32), dtype=np.float32)
    np.save(workdir / "clip.npy", clip)
    with torch.no_grad():
        want = model.encode_video(torch.from_numpy(clip)).numpy()
    proc = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, uri, "cmr-clip-test",
                           str(workdir / "clip.npy")], cwd=workdir, capture_output=True, text=True, timeout=600)
    out = [ln for ln in proc.stdout.splitlines() if ln.startswith("EMB ")]
    assert proc.returncode == 0 and out, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    got = np.array(json.loads(out[-1][4:]), dtype=np.float32)
    assert got.shape == (2, 16)
    np.testing.assert_allclose(got, want, atol=1e-5)
