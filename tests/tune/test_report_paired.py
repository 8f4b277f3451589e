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


# ------------------------------------------------------------------ a made-up sweep with per-study records

from cmr_ray import tracking  # noqa: E402
from cmr_ray.views import FULL_COMBO  # noqa: E402

N = 200
ACDC = ["DCM", "HCM", "MINF", "NOR", "RV"]


def _labels():
    rng = np.random.default_rng(0)
    return {"hcm": rng.integers(0, 2, N).astype(float),
            "acdc": np.array([ACDC[i] for i in rng.integers(0, 5, N)], dtype=object)}


def _ranks(quality: float, seed: int):
    """Ranks of N studies against the gallery: higher quality, more studies near the top."""
    rng = np.random.default_rng(seed)
    good = rng.random(N) < quality
    r = np.where(good, rng.integers(1, 6, N), rng.integers(1, N + 1, N))
    return r, np.where(rng.random(N) < quality, rng.integers(1, 6, N), rng.integers(1, N + 1, N))


def _child(c, exp, parent, tmp_path, views, frames, ranks, index=None, baseline=None, keys=None, per_study=True):
    from cmr_ray.eval.bootstrap import interval_metrics, per_study_record
    from cmr_ray.eval.probe import ProbeOutcome, known, score_predictions
    from cmr_ray.eval.retrieval import metrics_from_ranks

    tags = {"mlflow.parentRunId": parent}
    tags.update({"cmr.baseline": baseline, "cmr.kind": "baseline"} if baseline else
                {"cmr.kind": "trial", "cmr.trial_index": str(index), "cmr.trial_key": f"k{index}"})
    rid = c.create_run(exp, tags=tags).info.run_id
    tracking.log_params(c, rid, {"data.views": views, "data.frames": frames, "model.temperature": 0.05})
    labels, rng = _labels(), np.random.default_rng(index or 99)
    outcomes, m = {}, {f"test/{k}": v for k, v in metrics_from_ranks(*ranks).items()}
    for task, classes in (("hcm", [0, 1]), ("acdc", ACDC)):
        idx, y = known(labels, task)
        pred = np.where(rng.random(len(y)) < 0.7, y, y[rng.permutation(len(y))])
        score = rng.random(len(y)) if task == "hcm" else rng.dirichlet(np.ones(5), len(y))
        o = ProbeOutcome(task, {}, [], classes, y, pred, score)
        outcomes[task] = o
        m.update({f"probe/{task}_{k}": v for k, v in score_predictions(task, y, pred, score, classes)[0].items()})
    iv, _ = interval_metrics(ranks, outcomes, labels, 200, 0)
    m.update(iv)
    tracking.log_metrics(c, rid, m)
    if per_study:
        d = tmp_path / rid
        d.mkdir()
        rec = per_study_record(keys or [f"s{i:03d}" for i in range(N)], ranks, outcomes, labels)
        np.savez_compressed(d / "per_study.npz", **rec)
        c.log_artifact(rid, str(d / "per_study.npz"), artifact_path="eval")
    tracking.set_status(c, rid, "FINISHED")
    return rid


def _paired_sweep(c, tmp_path):
    exp = tracking.ensure_experiment(c, "views")
    parent = tracking.start_parent(c, exp, "k", "views", {})
    best = _ranks(0.8, 1)
    near = (best[0].copy(), best[1].copy())
    near[0][:3] = N                                            # three studies worse: within noise
    ids = {
        "zs": _child(c, exp, parent, tmp_path, FULL_COMBO, 16, _ranks(0.0, 9), baseline="zeroshot"),
        "sax": _child(c, exp, parent, tmp_path, "cine:sax", 8, _ranks(0.2, 2), index=0),
        "laxsax": _child(c, exp, parent, tmp_path, "cine:4ch+sax", 8, _ranks(0.4, 3), index=1),
        "f8": _child(c, exp, parent, tmp_path, FULL_COMBO, 8, _ranks(0.6, 4), index=2),
        "f32": _child(c, exp, parent, tmp_path, FULL_COMBO, 32, near, index=3),
        "f64": _child(c, exp, parent, tmp_path, FULL_COMBO, 64, best, index=4),
        "old": _child(c, exp, parent, tmp_path, "lge:sax", 8, _ranks(0.3, 5), index=5, per_study=False),
        "other": _child(c, exp, parent, tmp_path, "cine:4ch", 8, _ranks(0.3, 6), index=6,
                        keys=[f"x{i:03d}" for i in range(N)]),
    }
    return exp, parent, ids


def _table(text, title):
    lines = text.splitlines()
    i = lines.index(title) + 2
    j = next(k for k in range(i, len(lines)) if not lines[k].startswith("|"))
    head = [c.strip() for c in lines[i].strip("|").split(" | ")]
    return head, [[c.strip() for c in row.strip("|").split(" | ")] for row in lines[i + 2:j]], lines[j:]


def test_report_marks_rsum_differences_from_the_best_row_with_paired_intervals(workdir):
    from cmr_ray.tune.report import render_report, uncertainty

    c = tracking.client()
    exp, parent, ids = _paired_sweep(c, workdir)
    text = render_report(c, "views", plot_path=str(workdir / "copy.png"))
    head, t4, notes4 = _table(text, "### Table 4: retrieval on the test split (R@K in %)")
    assert head[head.index("RSUM") + 1] == "ΔRSUM vs best"
    col = head.index("ΔRSUM vs best")
    rows = {r[0] + " " + r[1]: r for r in t4}
    full = "CINE_lax-sax + LGE_lax-sax-2ch-3ch"
    runs = {k: c.get_run(v) for k, v in ids.items()}
    for key, label in (("f64", f"{full} 64"), ("sax", "CINE_sax 8")):
        m = runs[key].data.metrics
        assert rows[label][head.index("RSUM")] == f"{m['test/rsum']:.1f} [{m['test/rsum_lo']:.1f}, {m['test/rsum_hi']:.1f}]"
    assert rows[f"{full} 64"][col] == "best"
    assert rows[f"{full} 32"][col].endswith(" ≈")                 # three studies apart: not distinguishable
    assert not rows["CINE_sax 8"][col].endswith("≈") and rows["CINE_sax 8"][col].startswith("-")
    assert not rows["Zero-shot 16"][col].endswith("≈")
    assert rows["LGE_sax 8"][col] == "–" and rows["CINE_lax 8"][col] == "–"
    notes = "\n".join(notes4)
    assert f"Not distinguishable from the best (marked ≈: the interval contains 0): {full} (32 frames)." in notes
    assert "No eval/per_study.npz" in notes and "1 of 8 row(s): LGE_sax (8 frames)." in notes
    assert "other test studies than the best row, so not paired with it: CINE_lax (8 frames)." in notes
    # ρ over the paper rows (CINE_sax 8, CINE_lax-sax 8, full 8/32/64) with its interval
    import re

    rho = re.search(r"Spearman ρ, this run's RSUM vs the paper's: ([-\d.]+) \[([-\d.]+), ([-\d.]+)\]", notes)
    assert rho and float(rho[2]) <= float(rho[1]) <= float(rho[3])
    # the paired interval is that of the difference, not of either value
    unc = uncertainty(c, [runs[k] for k in ("sax", "laxsax", "f8", "f32", "f64", "old", "other")],
                      {"zeroshot": runs["zs"]})
    p = unc.vs_best[ids["f32"]]
    assert p.diff == pytest.approx(runs["f32"].data.metrics["test/rsum"] - runs["f64"].data.metrics["test/rsum"])
    assert p.lo <= p.diff <= p.hi <= 0 and p.lo < 0 and p.hi - p.lo < 15
    # Table 5: the 5-class accuracy with its interval
    head5, t5, _ = _table(text, "### Table 5: linear probes on frozen video embeddings (Acc, AUC, F1 in %)")
    m = runs["sax"].data.metrics
    sax = next(r for r in t5 if r[0] == "CINE_sax")
    assert sax[head5.index("5-class Acc")] == (f"{100 * m['probe/acdc_acc']:.1f} [{100 * m['probe/acdc_acc_lo']:.1f}, "
                                               f"{100 * m['probe/acdc_acc_hi']:.1f}]")
    # the figure: an artifact of the parent run, and the copy asked for
    assert "report/rsum_intervals.png" in [a.path for a in c.list_artifacts(parent, "report")]
    assert (workdir / "copy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"artifact report/rsum_intervals.png of parent run {parent}" in text


def test_figure_data_rows_and_error_bars(workdir):
    from cmr_ray.tune.report import figure_data, sweep_runs

    c = tracking.client()
    _, _, ids = _paired_sweep(c, workdir)
    s = sweep_runs(c, "views")
    d = figure_data(s.trials, s.baselines)
    assert [f for f, *_ in d["by_frames"]] == [8, 32, 64]
    f64 = c.get_run(ids["f64"]).data.metrics
    assert d["by_frames"][2] == (64, f64["test/rsum"], f64["test/rsum_lo"], f64["test/rsum_hi"])
    assert [v[0] for v in d["by_views"]] == ["CINE_sax · 8", "CINE_lax-sax · 8", "LGE_sax · 8", "CINE_lax · 8",
                                             "CINE_lax-sax + LGE_lax-sax-2ch-3ch · 8"]
    assert d["by_views"][0][4] == 126.2 and d["by_views"][2][4] is None
    assert (8, 178.5) in d["paper"] and set(d["references"]) == {"Zero-shot"}
    from cmr_ray.eval import plots

    assert plots.rsum_intervals([], [], workdir / "none.png") is None and not (workdir / "none.png").exists()
    assert plots.rsum_intervals(d["by_frames"], [], workdir / "f.png", paper=d["paper"]) == str(workdir / "f.png")


def test_compare_prints_every_paired_metric_and_refuses_in_one_line(workdir):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    c = tracking.client()
    _, _, ids = _paired_sweep(c, workdir)
    out = CliRunner().invoke(main, ["report", "views", "--compare", ids["f64"], ids["sax"], "--resamples", "300"])
    assert out.exit_code == 0, out.output
    rows = {ln.split(" | ")[0].strip("| "): ln.strip("|").split(" | ") for ln in out.output.splitlines()
            if ln.startswith("| test/") or ln.startswith("| probe/")}
    for k in ("test/rsum", "test/t2v_r1", "test/v2t_r50", "test/t2v_medr", "probe/hcm_auc", "probe/acdc_acc",
              "probe/acdc_f1"):
        assert k in rows, k
    assert rows["test/rsum"][-1].strip() == "yes" and rows["test/rsum"][3].startswith("+")
    assert f"A: run {ids['f64']} (CINE_lax-sax + LGE_lax-sax-2ch-3ch (64 frames))" in out.output

    same = CliRunner().invoke(main, ["report", "views", "--compare", ids["sax"], ids["sax"], "--resamples", "100"])
    assert same.exit_code == 0 and "| test/rsum |" in same.output
    assert all(r.split(" | ")[3:6] == ["+0.0", "[+0.0, +0.0]", "no |"] for r in same.output.splitlines()
               if r.startswith("| test/") and "medr" not in r and "meanr" not in r), same.output

    # an ablation sweep's row against the main sweep's, on the same test studies
    exp2 = tracking.ensure_experiment(c, "views_meanpool")
    parent2 = tracking.start_parent(c, exp2, "k2", "views_meanpool", {})
    abl = _child(c, exp2, parent2, workdir, "cine:sax", 8, _ranks(0.8, 1), index=0)
    cross = CliRunner().invoke(main, ["report", "views_meanpool", "--compare", abl, ids["sax"], "--resamples", "100"])
    assert cross.exit_code == 0, cross.output
    assert f"A: run {abl} (CINE_sax (8 frames))\n" in cross.output
    assert f"B: run {ids['sax']} (CINE_sax (8 frames)) of experiment 'views'" in cross.output
    assert "| test/rsum |" in cross.output

    for args, msg in (([ids["sax"], "0123abc"], "run 0123abc: no such run"),
                      ([ids["sax"], ids["old"]], f"run {ids['old']} (LGE_sax (8 frames)): no eval/per_study.npz artifact"),
                      ([ids["sax"], ids["other"]], "not the same test studies")):
        bad = CliRunner().invoke(main, ["report", "views", "--compare", *args])
        assert bad.exit_code == 1 and msg in bad.output, bad.output
        assert len(bad.output.strip().splitlines()) == 1
