"""Embedding a split of the clip store with a CMR-CLIP model (frozen, eval mode, no grad).

    from cmr_ray.eval.embed import embed_split
    emb = embed_split(model, "store", cfg, "test")
    emb.video, emb.text            # float32 [N, D], L2-normalised, row i = study i
    emb.labels["hcm"]              # float array, NaN where unknown; emb.labels["acdc"]: object, None
    emb.study_keys, emb.patient_keys, emb.impressions

Clips follow `cmr_ray.data.clips.make_clip` with evaluation sampling (segment
midpoints), scaled from uint8 to [0, 1].  A study lacking a view of the combo is left
out with one line saying how many and which (first few) keys.  Rows are read with
`cmr_ray.data.reader.load_table` (only the combo's columns) and decoded batch by batch.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from cmr_ray.console import print_progress
from cmr_ray.config import Config
from cmr_ray.data.clips import MissingViewError, make_clip
from cmr_ray.data.schema import ACDC_CLASSES, BINARY_LABELS, FINDINGS
from cmr_ray.views import combo_slots

DEFAULT_BATCH = 32


@dataclasses.dataclass
class Embeddings:
    video: np.ndarray  # [N, D] float32
    text: np.ndarray  # [N, D] float32
    labels: dict  # name -> array: binary labels float (NaN unknown), 'acdc' object (None unknown)
    study_keys: list
    patient_keys: list
    impressions: list
    split: str = ""
    skipped: list = dataclasses.field(default_factory=list)  # study keys lacking a view

    def __len__(self) -> int:
        return len(self.study_keys)

    def select(self, idx) -> "Embeddings":
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Embeddings(
            self.video[idx], self.text[idx], {k: v[idx] for k, v in self.labels.items()},
            pick(self.study_keys), pick(self.patient_keys), pick(self.impressions), self.split,
        )

    @staticmethod
    def concat(parts: list["Embeddings"], split: str) -> "Embeddings":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError(f"no studies to concatenate for split {split!r}")
        cat = lambda name: [x for p in parts for x in getattr(p, name)]  # noqa: E731
        return Embeddings(
            np.concatenate([p.video for p in parts]), np.concatenate([p.text for p in parts]),
            {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels},
            cat("study_keys"), cat("patient_keys"), cat("impressions"), split, cat("skipped"),
        )


def labels_from_rows(rows: list[dict]) -> dict:
    """Store label columns -> arrays: binary float with NaN for null (diagnoses and findings),
    'acdc' object with None."""
    out = {}
    for name in (*BINARY_LABELS, *FINDINGS):
        vals = [r.get(f"label_{name}") for r in rows]
        out[name] = np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)
    acdc = [r.get("label_acdc") for r in rows]
    bad = sorted({v for v in acdc if v is not None and v not in ACDC_CLASSES})
    if bad:
        raise ValueError(f"label_acdc: unknown class(es) {bad} (expected {', '.join(ACDC_CLASSES)})")
    out["acdc"] = np.array(acdc, dtype=object)
    return out


def rows_to_clips(rows: list[dict], combo: str, frames: int, rng=None,
                  sampling: str = "uniform") -> tuple[np.ndarray, list[int]]:
    """Clips [B, F, H, W] float32 in [0, 1] and the indices of the rows they came from."""
    clips, kept = [], []
    for i, row in enumerate(rows):
        try:
            clips.append(make_clip(row, combo, frames, rng, sampling))
        except MissingViewError:
            continue
        kept.append(i)
    if not clips:
        return np.zeros((0, frames, 1, 1), np.float32), kept
    return np.stack(clips).astype(np.float32) / 255.0, kept


def _model_device(model):
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


def encode_texts(model, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """Text embeddings, each distinct text encoded once."""
    import torch

    uniq = sorted(set(texts))
    pos = {t: i for i, t in enumerate(uniq)}
    outs = []
    with torch.no_grad():
        for a in range(0, len(uniq), batch_size):
            outs.append(model.encode_text(uniq[a:a + batch_size]).float().cpu().numpy())
    table = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    return table[[pos[t] for t in texts]].astype(np.float32)


def encode_clips(model, clips: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        x = torch.from_numpy(clips).to(_model_device(model))
        return model.encode_video(x).float().cpu().numpy().astype(np.float32)


def embed_split(model, store, cfg: Config, split: str, batch_size: int | None = None,
                progress: bool = True) -> Embeddings:
    """Embed every study of `split` (a split name, or a tuple of names concatenated)."""
    if isinstance(split, (tuple, list)):
        parts = [embed_split(model, store, cfg, s, batch_size, progress) for s in split]
        return Embeddings.concat(parts, "+".join(split))
    from cmr_ray.data.reader import load_table

    combo, frames = cfg.data.views, cfg.data.frames
    batch_size = int(batch_size or cfg.eval.batch_size)
    table = load_table(store, combo_slots(combo), split)
    was_training = getattr(model, "training", False)
    model.eval()
    videos, metas, skipped = [], [], []
    try:
        for batch in table.to_batches(max_chunksize=batch_size):
            rows = batch.to_pylist()
            clips, kept = rows_to_clips(rows, combo, frames, sampling=cfg.data.sampling)
            skipped += [rows[i]["study_key"] for i in sorted(set(range(len(rows))) - set(kept))]
            if kept:
                videos.append(encode_clips(model, clips))
                metas += [{k: v for k, v in rows[i].items() if not k.startswith(("cine_", "lge_"))} for i in kept]
            if progress:
                print_progress(len(metas) + len(skipped), table.num_rows, f"embed {split}: studies")
        if skipped:
            print(f"embed {split}: left out {len(skipped)} studies lacking a view of {combo} "
                  f"(e.g. {', '.join(skipped[:3])})", file=sys.stderr)
        impressions = [m["impression"] for m in metas]
        text = encode_texts(model, impressions) if metas else np.zeros((0, 0), np.float32)
    finally:
        model.train(was_training)
    video = np.concatenate(videos) if videos else np.zeros((0, 0), np.float32)
    return Embeddings(
        video=video, text=text, labels=labels_from_rows(metas),
        study_keys=[m["study_key"] for m in metas], patient_keys=[m["patient_key"] for m in metas],
        impressions=impressions, split=split, skipped=skipped,
    )
