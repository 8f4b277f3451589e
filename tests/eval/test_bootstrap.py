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


# ------------------------------------------------------------------ paired comparisons (item 3, 4)

def _record(tmp_path, name, keys, t2v, v2t, hcm_pred, acdc_pred, labels, rng):
    """A run's per_study.npz as evaluation writes it, read back as the report does."""
    from cmr_ray.eval.bootstrap import load_per_study, per_study_record
    from cmr_ray.eval.probe import known

    outcomes = {}
    for task, pred in (("hcm", hcm_pred), ("acdc", acdc_pred)):
        idx, y = known(labels, task)
        classes = [0, 1] if task == "hcm" else ["DCM", "HCM", "MINF", "NOR", "RV"]
        score = rng.random(len(idx)) if task == "hcm" else rng.dirichlet(np.ones(5), len(idx))
        outcomes[task] = _outcome(task, y, np.asarray(pred)[idx], score, classes)
    rec = per_study_record(keys, (t2v, v2t), outcomes, labels)
    np.savez_compressed(tmp_path / f"{name}.npz", **rec)
    return load_per_study(tmp_path / f"{name}.npz")


def _labels(rng, n):
    hcm = rng.integers(0, 2, n).astype(float)
    hcm[::7] = np.nan                                   # unknown labels: the probe skips those studies
    acdc = np.array([["DCM", "HCM", "MINF", "NOR", "RV"][i] for i in rng.integers(0, 5, n)], dtype=object)
    acdc[::5] = None
    return {"hcm": hcm, "acdc": acdc}


def _permuted(rec, perm):
    """The same run with its studies stored in another order."""
    out = dict(rec)
    inv = np.argsort(perm)
    for k in ("study_key", "t2v_rank", "v2t_rank"):
        out[k] = rec[k][perm]
    for t in ("hcm", "acdc"):
        out[f"{t}_index"] = inv[rec[f"{t}_index"]].astype(np.int32)
    return out


def test_identical_runs_differ_by_zero_with_a_zero_width_interval_in_any_study_order(tmp_path):
    from cmr_ray.eval.bootstrap import paired_differences

    rng = np.random.default_rng(5)
    n = 90
    labels = _labels(rng, n)
    keys = [f"s{i:03d}" for i in range(n)]
    a = _record(tmp_path, "a", keys, rng.integers(1, n + 1, n), rng.integers(1, n + 1, n),
                rng.integers(0, 2, n), labels["acdc"][rng.permutation(n)], labels, rng)
    for b in (a, _permuted(a, rng.permutation(n))):
        res, notes = paired_differences(a, b, resamples=300, seed=1)
        assert notes == []
        assert {"test/rsum", "test/t2v_r1", "test/v2t_medr", "probe/hcm_auc", "probe/acdc_acc", "probe/acdc_f1"} <= set(res)
        for k, p in res.items():
            assert p.a == p.b and p.diff == 0.0 and (p.lo, p.hi) == (0.0, 0.0), k
            assert not p.distinguishable


def test_paired_difference_is_the_difference_within_each_resample_and_refuses_other_studies(tmp_path):
    from cmr_ray.eval.bootstrap import (draw_weights, paired_differences, percentile_interval,
                                        record_resamples, same_studies)

    rng = np.random.default_rng(6)
    n = 120
    labels = _labels(rng, n)
    keys = [f"s{i:03d}" for i in range(n)]
    t2v, v2t = rng.integers(1, 60, n), rng.integers(1, 60, n)
    acdc_pred = labels["acdc"].copy()
    acdc_pred[acdc_pred == None] = "NOR"  # noqa: E711
    a = _record(tmp_path, "a", keys, t2v, v2t, np.nan_to_num(labels["hcm"]).astype(int), acdc_pred, labels, rng)
    better_b = _record(tmp_path, "b", keys, np.maximum(1, t2v - 30), v2t, rng.integers(0, 2, n),
                       np.where(rng.random(n) < 0.5, "DCM", acdc_pred), labels, rng)
    b = _permuted(better_b, rng.permutation(n))
    res, _ = paired_differences(a, b, resamples=400, seed=2, names=("run a", "run b"))
    ref_a, ref_b = metrics_from_ranks(t2v, v2t), metrics_from_ranks(np.maximum(1, t2v - 30), v2t)
    assert res["test/rsum"].a == pytest.approx(ref_a["rsum"]) and res["test/rsum"].b == pytest.approx(ref_b["rsum"])
    assert res["test/rsum"].diff < 0 and res["test/rsum"].distinguishable and res["test/rsum"].hi < 0
    assert res["probe/acdc_acc"].a == 1.0 and res["probe/acdc_acc"].diff > 0 and res["probe/acdc_acc"].lo > 0
    # the same draw for both runs: the interval is that of the within-resample differences
    w = draw_weights(n, 400, seed=2)
    ka = record_resamples(a, w, a["study_key"], seed=2)
    kb = record_resamples(better_b, w, a["study_key"], seed=2)
    lo, hi = percentile_interval(ka["test/rsum"] - kb["test/rsum"])
    assert (res["test/rsum"].lo, res["test/rsum"].hi) == pytest.approx((lo, hi))
    # an unpaired interval (independent draws) is wider than the paired one on the same runs
    w2 = draw_weights(n, 400, seed=3)
    kb2 = record_resamples(better_b, w2, a["study_key"])
    ulo, uhi = percentile_interval(ka["test/v2t_r50"] - kb2["test/v2t_r50"])
    assert res["test/v2t_r50"].hi - res["test/v2t_r50"].lo == 0.0 < uhi - ulo  # same v2t ranks: paired width 0

    other = dict(b)
    other["study_key"] = np.array([f"x{i}" for i in range(n)])
    with pytest.raises(ValueError) as e:
        paired_differences(a, other, names=("run a", "run c"))
    assert "\n" not in str(e.value) and "run a and run c: not the same test studies" in str(e.value)
    with pytest.raises(ValueError, match="not the same test studies"):
        same_studies(a, {"study_key": a["study_key"][:-1]})


def test_load_per_study_says_which_file_is_bad(tmp_path):
    from cmr_ray.eval.bootstrap import load_per_study

    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"^run 1/eval/per_study.npz: not a readable per_study.npz"):
        load_per_study(tmp_path / "bad.npz", "run 1/eval/per_study.npz")
    np.savez(tmp_path / "part.npz", study_key=np.array(["a"]))
    with pytest.raises(ValueError, match="lacks t2v_rank, v2t_rank"):
        load_per_study(tmp_path / "part.npz")


def test_spearman_resamples_match_scipy_and_the_interval_holds_the_value(tmp_path):
    from scipy.stats import spearmanr

    from cmr_ray.eval.bootstrap import spearman_interval, spearman_resamples

    rng = np.random.default_rng(8)
    vals = rng.integers(0, 6, (30, 7)).astype(float)   # ties on purpose
    ref = np.array([3.0, 1, 2, 7, 5, 5, 9])
    rho = spearman_resamples(vals, ref)
    for b in range(30):
        assert rho[b] == pytest.approx(spearmanr(vals[b], ref).statistic, nan_ok=True)
    assert np.isnan(spearman_resamples(np.ones((1, 7)), ref))[0]

    n = 150
    labels = _labels(rng, n)
    keys = [f"s{i:03d}" for i in range(n)]
    rows = []
    for j, shift in enumerate((0, 5, 10, 20, 40)):                # rows of rising quality
        t2v = np.maximum(1, rng.integers(1, 100, n) - shift)
        rows.append(_record(tmp_path, f"r{j}", keys, t2v, t2v, np.zeros(n, int), labels["acdc"], labels, rng))
    paper = [10.0, 20.0, 30.0, 40.0, 50.0]
    lo, hi = spearman_interval(rows, paper, resamples=300, seed=0)
    value = spearmanr([metrics_from_ranks(r["t2v_rank"], r["v2t_rank"])["rsum"] for r in rows], paper).statistic
    assert -1.0 <= lo <= value <= hi <= 1.0 and hi == 1.0


def test_retrieval_and_paired_intervals_cover_known_values_at_about_their_nominal_rate():
    """Simulated ranks with a known hit rate: R@10's interval covers 100·P(rank ≤ 10), and the
    paired interval of two correlated runs covers their known difference, in 90-99% of 200."""
    from cmr_ray.eval.bootstrap import paired_differences

    rng = np.random.default_rng(11)
    n, reps = 150, 200
    one, paired = 0, 0
    keys = np.array([f"s{i}" for i in range(n)])
    for rep in range(reps):
        u = rng.random(n)                        # one latent difficulty per study, shared by both runs
        far = rng.integers(11, n + 1, n)
        a = np.where(u < 0.5, rng.integers(1, 11, n), far)   # P(rank <= 10) = 0.5
        b = np.where(u < 0.4, rng.integers(1, 11, n), far)   # 0.4: 10 points below A, on the same studies
        w = draw_weights(n, 1000, seed=rep)
        lo, hi = retrieval_intervals(a, a, w)["t2v_r10"]
        one += lo <= 50.0 <= hi
        rec = [{"study_key": keys, "t2v_rank": r, "v2t_rank": r} for r in (a, b)]
        p = paired_differences(*rec, resamples=1000, seed=rep)[0]["test/t2v_r10"]
        paired += p.lo <= 10.0 <= p.hi
    assert 0.90 * reps <= one <= 0.99 * reps, one
    assert 0.90 * reps <= paired <= 0.99 * reps, paired
