"""Fixtures for the training tests: a tiny fake store, a tiny text model, a small local Ray."""
import os

import pytest

from tests.model.fakes import write_fake_store, write_tiny_text_model

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    return write_tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def fake_store(tmp_path_factory):
    return write_fake_store(tmp_path_factory.mktemp("store") / "store", studies=60, size=32)


def tiny_train_cfg(store, text_model, **over):
    from cmr_ray.config import load_config

    o = {"data.store": store, "data.image_size": 32, "data.frames": 4, "data.views": "cine:sax|lge:sax",
         "model.hidden_size": 32, "model.layers": 1, "model.heads": 2, "model.patch_size": 16,
         "model.embed_dim": 16, "model.text_model": text_model, "train.batch_size": 8, "train.epochs": 2,
         "train.lr": 2e-3, "train.workers": 1, "train.cpus_per_worker": 0.5, "train.torch_threads": 1,
         "train.keep_checkpoints": 2}
    o.update(over)
    return load_config(None, o)


@pytest.fixture(scope="module")
def ray_cluster():
    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=4)
    yield ray
    ray.shutdown()
