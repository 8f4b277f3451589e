"""Probes: scikit-learn's own metrics, no test patient in fitting, few-shot sampling, edge cases."""
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval.probe import (
    FewShotError, check_disjoint, few_shot_indices, few_shot_probes, fit_probe, known,
    probe_tasks, run_probe,
)


def _data(n, seed, shift=2.0):
    """Features carrying the labels: binary 'hcm' and 5-class 'acdc'."""
    rng = np.random.default_rng(seed)
    acdc = np.array([ACDC_CLASSES[i % 5] for i in range(n)], dtype=object)
    hcm = (acdc == "HCM").astype(float)
    x = rng.normal(size=(n, 12))
    x[np.arange(n), [ACDC_CLASSES.index(c) for c in acdc]] += shift
    labels = {"hcm": hcm, "acdc": acdc, "nicm": np.full(n, np.nan), "icm": hcm.copy(), "amyl": hcm.copy()}
    return x, labels


def test_metrics_are_scikit_learns_own():
    x, lab = _data(200, 0)
    xt, labt = _data(100, 1)
    fixed = {}

    def fit_fn(x, y, seed=0):
        fixed["m"] = LogisticRegression(max_iter=1000).fit(x, y)
        return fixed["m"]

    for task in ("hcm", "acdc"):
        fi, fy = known(lab, task)
        ti, ty = known(labt, task)
        out = run_probe(task, x[fi], fy, xt[ti], ty, fit_fn=fit_fn)
        m = fixed["m"]
        pred, proba = m.predict(xt[ti]), m.predict_proba(xt[ti])
        assert out.metrics["acc"] == accuracy_score(ty, pred)
        if task == "hcm":
            assert out.metrics["auc"] == roc_auc_score(ty, proba[:, 1])
            assert out.metrics["f1"] == f1_score(ty, pred)
        else:
            assert out.metrics["auc"] == roc_auc_score(ty, proba, multi_class="ovr", average="macro")
            assert out.metrics["f1"] == f1_score(ty, pred, average="macro")
        assert out.metrics["acc"] > 0.7  # the features carry the label


def test_fit_probe_learns_and_balances():
    x, lab = _data(150, 2, shift=3.0)
    xt, labt = _data(100, 3, shift=3.0)
    metrics, outcomes, notes = probe_tasks(x, lab, xt, labt, ["hcm", "acdc"])
    assert metrics["hcm_auc"] > 0.9 and metrics["acdc_acc"] > 0.7
    lr = fit_probe(x, lab["hcm"].astype(int)).named_steps["lr"]
    assert lr.class_weight == "balanced" and float(lr.C_) in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    assert outcomes["hcm"].C in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    assert sorted(outcomes["acdc"].classes) == sorted(ACDC_CLASSES)


def test_probe_never_sees_test_rows():
    x, lab = _data(100, 4)
    xt, labt = _data(60, 5)
    x[:, -1], xt[:, -1] = 1.0, -1.0  # marker column: +1 fitting rows, -1 test rows
    seen = []

    def spy(xf, yf, seed=0):
        seen.append(xf.copy())
        return fit_probe(xf, yf, seed)

    probe_tasks(x, lab, xt, labt, ["hcm", "acdc"], fit_fn=spy,
                fit_patients=[f"p{i}" for i in range(100)], test_patients=[f"t{i}" for i in range(60)])
    few_shot_probes(x, lab, xt, labt, ["hcm"], [2], 2, fit_fn=spy)
    assert len(seen) == 4
    for xf in seen:
        assert np.all(xf[:, -1] == 1.0)
    with pytest.raises(ValueError, match="patient-level"):
        probe_tasks(x, lab, xt, labt, ["hcm"], fit_patients=["a", "b"], test_patients=["b", "c"])
    with pytest.raises(ValueError, match="patient"):
        check_disjoint(["a"], ["a"])


def test_few_shot_takes_exactly_k_per_class_from_train():
    y = np.array(["NOR"] * 10 + ["HCM"] * 4 + ["RV"] * 3, dtype=object)
    for seed in range(5):
        idx = few_shot_indices(y, 3, np.random.default_rng(seed))
        assert len(set(idx.tolist())) == 9 and idx.max() < len(y)
        vals, counts = np.unique(y[idx], return_counts=True)
        assert dict(zip(vals, counts)) == {"NOR": 3, "HCM": 3, "RV": 3}
    draws = {tuple(few_shot_indices(y, 2, np.random.default_rng(s)).tolist()) for s in range(5)}
    assert len(draws) > 1  # the draw depends on the seed
    with pytest.raises(FewShotError, match="fewer than k=4"):
        few_shot_indices(y, 4, np.random.default_rng(0))


def test_few_shot_sizes_and_keys():
    x, lab = _data(100, 6)
    xt, labt = _data(50, 7)
    sizes_seen = []

    def spy(xf, yf, seed=0):
        sizes_seen.append((len(yf), sorted(set(yf.tolist()))))
        return fit_probe(xf, yf, seed)

    m, notes = few_shot_probes(x, lab, xt, labt, ["acdc", "hcm"], [1, 4, 50], 2, fit_fn=spy)
    assert (5, sorted(ACDC_CLASSES)) in sizes_seen and (20, sorted(ACDC_CLASSES)) in sizes_seen
    assert (2, [0, 1]) in sizes_seen and (8, [0, 1]) in sizes_seen
    assert not math.isnan(m["acdc_acc_k1"]) and not math.isnan(m["hcm_auc_k4"])
    assert math.isnan(m["acdc_acc_k50"]) and any("k=50" in n for n in notes)  # 20 per class only


def test_missing_labels_and_absent_classes():
    x, lab = _data(100, 8)
    xt, labt = _data(50, 9)
    lab["hcm"][:50] = np.nan  # unknown labels are left out, not a crash
    lab["amyl"][:] = 0.0  # no positive example to fit on
    acdc = lab["acdc"].copy()
    acdc[acdc == "RV"] = None  # RV absent from fitting, present in test
    lab["acdc"] = acdc
    m, outcomes, notes = probe_tasks(x, lab, xt, labt, ["nicm", "hcm", "amyl", "acdc"])
    assert math.isnan(m["nicm_acc"]) and any("nicm" in n for n in notes)
    assert not math.isnan(m["hcm_auc"])
    assert math.isnan(m["amyl_auc"]) and any("amyl" in n and "single class" in n for n in notes)
    assert math.isnan(m["acdc_auc"]) and not math.isnan(m["acdc_acc"])
    assert any("RV" in n for n in notes)
    assert "RV" not in set(outcomes["acdc"].y_pred.tolist())


def test_undefined_metrics_are_nan_with_a_reason():
    from cmr_ray.eval.probe import score_predictions

    y = np.array([0, 0, 0])
    m, notes = score_predictions("hcm", y, np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]), [0, 1])
    assert m["acc"] == 1.0 and math.isnan(m["auc"]) and math.isnan(m["f1"])
    assert any("AUC undefined" in n for n in notes) and any("F1 undefined" in n for n in notes)
    m, _ = score_predictions("hcm", y, np.array([0, 1, 0]), np.array([0.1, 0.9, 0.3]), [0, 1])
    assert m["f1"] == 0.0  # a false positive: F1 is defined, and zero


# ---------------------------------------------------------------- findings (issue 20)

def test_findings_are_probed_where_the_labels_have_them():
    from cmr_ray.eval.probe import TASKS, tasks_with_findings

    n = 10
    base = {"hcm": np.zeros(n), "acdc": np.array(["NOR"] * n, dtype=object)}
    assert tasks_with_findings(["hcm", "acdc"], base, base) == ["hcm", "acdc"]  # a store without findings: as today
    with_f = {**base, "lv_dilation": np.r_[np.zeros(5), np.ones(5)], "rv_dilation": np.full(n, np.nan)}
    assert tasks_with_findings(["hcm", "acdc"], with_f, with_f) == ["hcm", "acdc", "lv_dilation"]  # all-unknown left out
    assert tasks_with_findings(["hcm", "acdc"], with_f, base) == ["hcm", "acdc"]  # the test split lacks it
    assert tasks_with_findings(["lv_dilation"], with_f, with_f) == ["lv_dilation"]  # named once
    assert "pericardial_effusion" in TASKS


def test_probe_on_a_finding_and_its_bootstrap_interval():
    from cmr_ray.eval.bootstrap import interval_metrics

    rng = np.random.default_rng(0)

    def data(n):
        y = (rng.random(n) < 0.3).astype(float)
        x = rng.normal(size=(n, 6))
        x[:, 2] += 2.5 * y
        y[:3] = np.nan  # unknown for a few studies: left out
        return x, {"rv_dilation": y}

    x, lab = data(160)
    xt, labt = data(120)
    m, outcomes, _ = probe_tasks(x, lab, xt, labt, ["rv_dilation"])
    assert m["rv_dilation_auc"] > 0.9 and set(m) == {"rv_dilation_acc", "rv_dilation_auc", "rv_dilation_f1"}
    ranks = (np.arange(1, 121), np.arange(1, 121))
    iv, _ = interval_metrics(ranks, outcomes, labt, 200, 0)
    for k in ("acc", "auc", "f1"):
        assert iv[f"probe/rv_dilation_{k}_lo"] <= m[f"rv_dilation_{k}"] <= iv[f"probe/rv_dilation_{k}_hi"]
