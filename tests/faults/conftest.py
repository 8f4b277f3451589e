"""Fixtures for the fault and privacy tests (issue 8): one synthetic cohort per session.

The cohort (seed 10, 13 studies, protocol small) has classic, Enhanced MR multi-frame and
compressed (JPEG 2000, RLE, JPEG-LS) studies; `corpus.py` damages copies of some of them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")

COHORT_SEED = 10
COHORT_STUDIES = 13


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A synthetic cohort (DICOM, reports.csv, labels.csv, phi.json), written once."""
    from cmr_ray.synth import generate_cohort

    out = tmp_path_factory.mktemp("faults-cohort") / "cohort"
    generate_cohort(out, COHORT_STUDIES, COHORT_SEED, protocol="small", workers=2, progress=False)
    return out
