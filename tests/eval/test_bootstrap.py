"""Bootstrap intervals (issue 19): each resample's metric equals the metric of the expanded
resample computed the ordinary way; intervals cover a known value at their nominal rate;
identical inputs give identical intervals; a single-class resample is redrawn."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.eval.bootstrap import (draw_weights, percentile_interval, probe_intervals, probe_resamples,
                                    redraw_single_class, retrieval_intervals, retrieval_resamples)
from cmr_ray.eval.probe import ProbeOutcome, score_predictions
from cmr_ray.eval.retrieval import metrics_from_ranks


def _expand(w_row):
    return np.repeat(np.arange(len(w_row)), w_row.astype(np.int64))


def test_weights_are_resamples_of_n_studies():
    w = draw_weights(50, 200, seed=3)
    assert w.shape == (200, 50) and np.all(w.sum(axis=1) == 50) and np.all(w >= 0)
    assert np.array_equal(w, draw_weights(50, 200, seed=3))
    assert not np.array_equal(w, draw_weights(50, 200, seed=4))
    with pytest.raises(ValueError, match="resamples"):
        draw_weights(0, 10, 0)


def test_retrieval_resamples_match_metrics_from_ranks_of_the_expanded_resample():
    rng = np.random.default_rng(0)
    n = 60
    t2v, v2t = rng.integers(1, n + 1, n), rng.integers(1, n + 1, n)
    w = draw_weights(n, 25, seed=1)
    res = retrieval_resamples(t2v, v2t, w)
    for b in range(25):
        idx = _expand(w[b])
        ref = metrics_from_ranks(t2v[idx], v2t[idx])
        for k, v in ref.items():
            assert res[k][b] == pytest.approx(v, abs=1e-4), (k, b)


def _outcome(task, y, pred, score, classes):
    return ProbeOutcome(task, {}, [], classes, np.asarray(y), np.asarray(pred), np.asarray(score))


def test_probe_resamples_match_sklearn_on_the_expanded_resample():
    rng = np.random.default_rng(1)
    n = 80
    y = rng.integers(0, 2, n)
    score = np.clip(0.3 * y + rng.random(n) * 0.8, 0, 1).round(2)  # ties on purpose
    pred = (score > 0.5).astype(int)
    classes5 = ["DCM", "HCM", "MINF", "NOR", "RV"]
    y5 = np.array([classes5[i] for i in rng.integers(0, 5, n)], dtype=object)
    p5 = rng.dirichlet(np.ones(5), n)
    pred5 = np.array([classes5[i] for i in p5.argmax(1)], dtype=object)
    w = draw_weights(n, 20, seed=2)
    w, _ = redraw_single_class(y5, w, seed=2)
    binary = probe_resamples(_outcome("hcm", y, pred, score, [0, 1]), w)
    multi = probe_resamples(_outcome("acdc", y5, pred5, p5, classes5), w)
    for b in range(20):
        idx = _expand(w[b])
        ref, _ = score_predictions("hcm", y[idx], pred[idx], score[idx], [0, 1])
        ref5, _ = score_predictions("acdc", y5[idx], pred5[idx], p5[idx], classes5)
        for k in ("acc", "auc", "f1"):
            assert binary[k][b] == pytest.approx(ref[k], abs=1e-5), (k, b)
            assert multi[k][b] == pytest.approx(ref5[k], abs=1e-5), (k, b)


def test_intervals_cover_a_known_accuracy_at_about_their_nominal_rate():
    rng = np.random.default_rng(7)
    true_acc, n, covered = 0.8, 150, 0
    for rep in range(200):
        correct = rng.random(n) < true_acc
        y = rng.integers(0, 2, n)
        pred = np.where(correct, y, 1 - y)
        w = draw_weights(n, 1000, seed=rep)
        iv, _ = probe_intervals(_outcome("nicm", y, pred, pred.astype(float), [0, 1]), w, seed=rep)
        covered += iv["acc"][0] <= true_acc <= iv["acc"][1]
    assert 0.90 * 200 <= covered <= 0.99 * 200, covered


def test_identical_inputs_give_identical_intervals_and_the_value_lies_inside():
    rng = np.random.default_rng(3)
    n = 100
    t2v, v2t = rng.integers(1, 40, n), rng.integers(1, 40, n)
    w = draw_weights(n, 500, seed=0)
    a, b = retrieval_intervals(t2v, v2t, w), retrieval_intervals(t2v.copy(), v2t.copy(), w)
    assert a == b
    value = metrics_from_ranks(t2v, v2t)
    for k, (lo, hi) in a.items():
        assert lo <= value[k] <= hi, k


def test_a_single_class_resample_is_redrawn_and_counted():
    y = np.array([1] + [0] * 19)  # one positive: most resamples of 20 miss it
    pred, score = y.copy(), y.astype(float)
    w = draw_weights(20, 300, seed=0)
    missing = int((w[:, 0] == 0).sum())
    assert missing > 50
    iv, notes = probe_intervals(_outcome("amyl", y, pred, score, [0, 1]), w, seed=0)
    assert iv["auc"] == (1.0, 1.0) and iv["acc"] == (1.0, 1.0)
    assert notes and f"{missing} bootstrap resample(s)" in notes[0]
    fixed, redraws = redraw_single_class(y, w, seed=0)
    assert redraws == missing and np.all(fixed[:, 0] > 0)
    assert np.array_equal(fixed[w[:, 0] > 0], w[w[:, 0] > 0])  # the others are kept as drawn


def test_percentile_interval_skips_nan():
    assert all(np.isnan(percentile_interval(np.array([np.nan, np.nan]))))
    lo, hi = percentile_interval(np.array([np.nan] + list(range(101))))
    assert (lo, hi) == pytest.approx((2.5, 97.5))
