"""Training checkpoints: one directory with `model.pt` and the resolved `config.yaml`.

    save_checkpoint(dir, model, optimizer, scheduler, epoch=3, cfg=cfg, metrics=m, history=h)
    model, cfg = load_checkpoint(dir)             # the model, in eval mode, on the CPU
    state = read_state(dir)                       # the raw dict (weights_only=True)

`model.pt` holds `model` (the state dict; a frozen text encoder's weights are left out and
rebuilt from `model.text_model`), `optimizer`, `scheduler`, `epoch` (epochs completed),
`metrics` (the last reported) and `history` (one entry per completed epoch).  Loading uses
`torch.load(weights_only=True)`: a checkpoint cannot run code.  `dir` may be a
`ray.train.Checkpoint`, a local path or a URI that `pyarrow.fs` opens (s3://...).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from cmr_ray.config import Config, ConfigError, load_saved_config, to_yaml

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"


class CheckpointError(ValueError):
    pass


def save_checkpoint(path, model, optimizer, scheduler, epoch: int, cfg: Config, metrics: dict | None = None,
                    history: list | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {k: v.detach().cpu() for k, v in model.trainable_state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "history": list(history or []),
    }
    torch.save(state, path / MODEL_FILE)
    (path / CONFIG_FILE).write_text(to_yaml(cfg))
    return path


def _local_dir(path):
    """A local directory for a ray Checkpoint, a local path, or a URI (downloaded)."""
    if hasattr(path, "to_directory"):
        return path.to_directory()
    path = str(path)
    if "://" in path and not path.startswith("file://"):
        import pyarrow.fs as pafs

        tmp = tempfile.mkdtemp(prefix="cmr-ckpt-")
        pafs.copy_files(path, tmp)
        return tmp
    return path.removeprefix("file://")


def read_state(path) -> tuple[dict, dict]:
    """(state dict of model.pt, config dict) from a checkpoint directory."""
    d = Path(_local_dir(path))
    model_file, cfg_file = d / MODEL_FILE, d / CONFIG_FILE
    for f in (model_file, cfg_file):
        if not f.exists():
            raise CheckpointError(f"{path}: not a cmr-ray checkpoint (no {f.name})")
    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is one line
        raise CheckpointError(f"{model_file}: cannot load ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    try:
        cfg = load_saved_config(cfg_file)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return state, cfg


def load_checkpoint(path):
    """(model in eval mode on the CPU, resolved config) from a checkpoint directory."""
    from cmr_ray.model import build_model

    state, cfg = read_state(path)
    model = build_model(cfg, video_init=False)  # its weights come from the checkpoint next
    model.load_trainable_state_dict(state["model"])
    return model.eval(), cfg


def latest_checkpoint_dir(run_dir) -> str | None:
    """The newest `checkpoint_*` directory under a Ray Train run directory (local)."""
    run_dir = Path(run_dir)
    cands = sorted((p for p in run_dir.glob("checkpoint_*") if (p / MODEL_FILE).exists()), key=os.path.getmtime)
    return str(cands[-1]) if cands else None
