"""An on-disk cache of frozen text-tower features, shared by every run on a machine.

    cache = TextFeatureCache.for_tower(tower)          # None when disabled
    found = cache.get(["Normal study.", ...])         # {text: float32 tensor [D]} for the texts it has
    cache.put({"Normal study.": feats[0], ...})

A frozen text tower maps the same impression to the same features in every trial of a
sweep, in evaluation and in every baseline; encoding ~800 impressions with MiniLM costs
tens of CPU-seconds each time.  The cache keeps one small `.npy` per (tower, impression)
under `$CMR_RAY_CACHE/text/<tower id>/` (default `~/.cache/cmr-ray`), named by a SHA-256
of the impression text: no report text is written.  The tower id hashes the model name,
the token limit and the encoder's weights, so a different model or checkpoint never reads
another's features.  Files are written atomically (temp name, then rename), so runs that
fill the cache at once never see a half-written file.  `CMR_RAY_TEXT_CACHE=0` turns it off.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def cache_root() -> Path:
    return Path(os.environ.get("CMR_RAY_CACHE") or Path.home() / ".cache" / "cmr-ray").expanduser()


def _enabled() -> bool:
    return os.environ.get("CMR_RAY_TEXT_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def tower_id(tower) -> str:
    """Model name, token limit and a digest of the encoder's weights."""
    h = hashlib.sha256(f"{tower.name}|{tower.max_length}".encode())
    with torch.no_grad():
        for name, p in sorted(tower.encoder.state_dict().items()):
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextFeatureCache:
    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    @classmethod
    def for_tower(cls, tower) -> "TextFeatureCache | None":
        if not _enabled():
            return None
        return cls(cache_root() / "text" / tower_id(tower))

    def _path(self, text: str) -> Path:
        k = text_key(text)
        return self.dir / k[:2] / f"{k}.npy"

    def get(self, texts) -> dict[str, torch.Tensor]:
        out = {}
        for t in dict.fromkeys(texts):
            p = self._path(t)
            try:
                arr = np.load(p, allow_pickle=False)
            except (FileNotFoundError, ValueError, OSError):
                continue  # absent, or unreadable: encode it again (and rewrite it)
            out[t] = torch.from_numpy(arr.astype(np.float32, copy=False))
        return out

    def put(self, feats: dict[str, torch.Tensor]) -> None:
        for t, f in feats.items():
            p = self._path(t)
            tmp = None
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=".npy")
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, f.detach().to("cpu", torch.float32).numpy(), allow_pickle=False)
                os.replace(tmp, p)
            except OSError:  # a read-only or full disk: the cache is an optimisation, never a failure
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
                return
