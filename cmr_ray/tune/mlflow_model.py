"""The best trial's model as MLflow logs and registers it: weights and config, no pickle.

    save_model(path, model, cfg)             # an MLflow model directory (what the sweep logs)
    model, cfg = load_model(path)            # the CMRClip in eval mode on the CPU, its config
    emb = mlflow.pyfunc.load_model("models:/cmr-clip/1").predict(clips)
                                             # clips float32 [B, F, H, W] in [0, 1] -> [B, D]

Layout of `path`: `MLmodel` (a pyfunc model whose loader is this module, `loader_module`),
`data/model/weights.safetensors` (the model's `trainable_state_dict`: a frozen text
encoder's weights are left out and rebuilt from `model.text_model`, as in a checkpoint),
`data/model/config.yaml` and `config.json` (the resolved config that builds the model),
and MLflow's environment files.  Nothing in it is code or a pickle: loading reads tensors
(safetensors) and YAML, and the code that builds the model is the installed cmr_ray
package.  `cmr-ray` must be installed wherever the model is loaded.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from cmr_ray.config import Config

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.yaml"
CONFIG_JSON = "config.json"
DATA_NAME = "model"  # the data directory inside the MLflow model: data/model/


def _state_dict(model) -> dict:
    sd = model.trainable_state_dict() if hasattr(model, "trainable_state_dict") else model.state_dict()
    # safetensors takes contiguous tensors that share no storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _signature(cfg: Config, state: dict):
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    proj = state.get("video_proj.weight")
    if proj is None:
        return None
    f, s = cfg.data.frames, cfg.data.image_size
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, f, s, s))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, int(proj.shape[0])))]))


def requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("cmr-ray", "torch", "transformers", "safetensors", "mlflow"):
        try:
            out.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            out.append(pkg)
    return out


def save_model(path, model, cfg: Config) -> Path:
    """Write `model` (a CMRClip) and the config that builds it as an MLflow pyfunc model at `path`."""
    import mlflow.pyfunc
    from safetensors.torch import save_file

    from cmr_ray.config import thaw, to_yaml

    path = Path(path)
    state = _state_dict(model)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / DATA_NAME
        data.mkdir()
        save_file(state, str(data / WEIGHTS_FILE), metadata={"format": "pt"})
        (data / CONFIG_FILE).write_text(to_yaml(cfg))
        (data / CONFIG_JSON).write_text(json.dumps(thaw(cfg), indent=1, sort_keys=True, default=str))
        with warnings.catch_warnings():  # an example clip would be megabytes of JSON; the signature says it all
            warnings.filterwarnings("ignore", message=".*An input example was not provided")
            mlflow.pyfunc.save_model(
                str(path), loader_module=__name__, data_path=str(data), signature=_signature(cfg, state),
                pip_requirements=requirements(),  # given: no inference (it would load the model in a subprocess)
                uv_project_path=tmp,  # no uv project here: MLflow copies none of the caller's into the artifact
            )
    return path


def load_model(path):
    """(CMRClip in eval mode on the CPU, resolved config) from `save_model`'s directory, its
    `data/model` directory, or a downloaded MLflow model.  Reads no pickle."""
    from safetensors.torch import load_file

    from cmr_ray.config import load_saved_config
    from cmr_ray.model import build_model

    d = Path(path)
    if not (d / WEIGHTS_FILE).exists() and (d / "data" / DATA_NAME / WEIGHTS_FILE).exists():
        d = d / "data" / DATA_NAME
    for f in (WEIGHTS_FILE, CONFIG_FILE):
        if not (d / f).exists():
            raise FileNotFoundError(f"{path}: not a cmr-ray MLflow model (no {f})")
    cfg = load_saved_config(d / CONFIG_FILE)
    model = build_model(cfg, video_init=False)  # its weights come from the file next
    model.load_trainable_state_dict(load_file(str(d / WEIGHTS_FILE), device="cpu"))
    return model.eval(), cfg


class EmbeddingModel:
    """What `mlflow.pyfunc.load_model` returns the predictions of: clip embeddings."""

    def __init__(self, model, cfg: Config):
        self.model, self.cfg = model, cfg

    def predict(self, model_input, params=None):
        import numpy as np
        import torch

        x = model_input
        if isinstance(x, dict) and len(x) == 1:  # a named tensor input
            x = next(iter(x.values()))
        if hasattr(x, "to_numpy"):  # a DataFrame is not a clip
            raise TypeError("predict takes clips as an array [B, frames, H, W], float32 in [0, 1]")
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        with torch.no_grad():
            return self.model.encode_video(x.float()).cpu().numpy().astype(np.float32)


def _load_pyfunc(data_path):
    """MLflow's entry point (`loader_module`): `data_path` is the model's data/model directory."""
    model, cfg = load_model(data_path)
    return EmbeddingModel(model, cfg)

