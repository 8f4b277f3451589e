import pytest

from tests.model.fakes import write_tiny_text_model


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory):
    return write_tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_cfg(tiny_text_model):
    from cmr_ray.config import load_config

    return load_config(None, {"data.image_size": 32, "data.frames": 4, "model.hidden_size": 32,
                              "model.layers": 1, "model.heads": 2, "model.patch_size": 16,
                              "model.embed_dim": 16, "model.text_model": tiny_text_model})
