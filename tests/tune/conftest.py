"""Fixtures for the sweep tests: a working directory, a tiny fake store, an experiment file
over smoke.yaml pointing at it, a local loopback Ray, and the fakes in tests/tune/fakes.py
made picklable by value (Ray workers cannot import test modules)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

IMPRESSIONS = [
    "Severely dilated left ventricle with global hypokinesis, ejection fraction 22 percent.",
    "Subendocardial late gadolinium enhancement in the LAD territory consistent with infarction.",
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_store(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path / "shards").mkdir(parents=True)
    pq.write_table(pa.table({"impression": IMPRESSIONS}), path / "shards" / "part-00000.parquet")
    (path / "store.json").write_text(json.dumps({"studies": len(IMPRESSIONS)}))
    return path


def write_experiment(workdir: Path, name="fakesweep", extra: str = "") -> Path:
    make_store(workdir / "store") if not (workdir / "store").exists() else None
    p = workdir / f"{name}.yaml"
    p.write_text(
        f"base: {REPO / 'experiments' / 'smoke.yaml'}\n"
        f"data: {{store: store}}\n"
        f"train: {{storage_path: ray_results}}\n"
        f"sweep: {{experiment: {name}{', ' + extra if extra else ''}}}\n"
    )
    return p


@pytest.fixture
def fakes():
    import ray.cloudpickle

    import fakes as mod

    ray.cloudpickle.register_pickle_by_value(mod)
    return mod


@pytest.fixture
def ray_local():
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=4)
    yield ray
    ray.shutdown()
