"""Impression ids: the same id for impressions that are identical after normalisation.

    impression_id("No  LGE.") == impression_id("no lge")     # True
    normalize_impression("  Mild, diffuse  LGE! ")            # 'mild diffuse lge'

Pure Python (no torch): the data pipeline computes ids in Ray Data tasks; `ClipLoss`
uses them to keep identical reports from counting as each other's negatives.
"""
from __future__ import annotations

import hashlib

from cmr_ray.text.report import normalize_impression  # the project's one normalisation (pure Python)


def impression_id(text: str) -> int:
    """A stable int64 id of the normalised impression (same in every process and run)."""
    digest = hashlib.blake2b(normalize_impression(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
