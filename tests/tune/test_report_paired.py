"""Issue 19, paired comparisons in the report: every row of a sweep (trials and baselines)
keeps `eval/per_study.npz`; the report pairs rows by it (a real sqlite MLflow store, no Ray)."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.config import load_config


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    from tests.model.fakes import write_tiny_text_model

    return write_tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))


def test_a_baseline_writes_per_study_npz_like_a_trial(tmp_path, tiny_text):
    from cmr_ray.tune.baselines import compute_baseline
    from tests.model.fakes import write_fake_store

    store = write_fake_store(tmp_path / "store", studies=30, size=16)
    cfg = load_config(None, {"data.store": store, "data.image_size": 16, "data.views": "cine:sax", "data.frames": 2,
                             "model.hidden_size": 16, "model.layers": 1, "model.heads": 2, "model.patch_size": 8,
                             "model.embed_dim": 16, "model.text_model": tiny_text, "train.batch_size": 8,
                             "eval.few_shot": [], "eval.bootstrap": 50, "eval.probes": ["hcm", "acdc"]})
    metrics = compute_baseline("zeroshot", cfg, tmp_path / "out", progress=False)
    rec = np.load(tmp_path / "out" / "per_study.npz")
    n = len(rec["study_key"])
    assert n > 0 and len(set(rec["study_key"].tolist())) == n
    assert rec["t2v_rank"].shape == rec["v2t_rank"].shape == (n,)
    assert rec["acdc_score"].shape[0] == len(rec["acdc_index"]) and "hcm_pred" in rec
    from cmr_ray.eval.retrieval import metrics_from_ranks

    assert metrics_from_ranks(rec["t2v_rank"], rec["v2t_rank"])["rsum"] == pytest.approx(metrics["test/rsum"])
