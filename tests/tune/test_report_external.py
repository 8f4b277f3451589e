"""Issue 20 in `cmr-ray report`: the findings table (zero-shot prompt, probe and prototype
few-shot per finding, internal and external side by side) and the drop internal -> external
of the main metrics; pure on made-up runs, then through render_report on a real sqlite
MLflow store (no Ray)."""
from __future__ import annotations

from types import SimpleNamespace

from cmr_ray import tracking
from cmr_ray.data.schema import FINDINGS
from cmr_ray.tune.report_external import drop_table, external_report, findings_table, pick_run
from cmr_ray.views import FULL_COMBO


def metrics(rsum: float, ext: bool = True, findings: bool = True, equal: bool = True) -> dict:
    m = {"test/rsum": rsum, "probe/acdc_acc": 0.7, **{f"probe/{t}_auc": 0.8 for t in ("nicm", "icm", "amyl", "hcm")}}
    if findings:
        for f in FINDINGS:
            m.update({f"zeroshot_prompt/{f}_auc": 0.75, f"probe/{f}_auc": 0.9})
            for n in (1, 4, 16):
                m.update({f"fewshot_proto/{f}_auc_k{n}": 0.6 + n / 100, f"fewshot_proto/{f}_auc_k{n}_std": 0.05})
    if ext:
        m.update({f"external/{k}": v - (30.0 if k == "test/rsum" else 0.1) for k, v in list(m.items())
                  if not k.endswith("_std")})
        m.update({f"external/{k}": v for k, v in list(m.items()) if k.endswith("_std") and not k.startswith("ext")})
        m["external/n_studies"] = 150.0
        if equal:  # the internal test split (202 studies) scored again at the external cohort's size
            m.update({"test/n_studies": 202.0, "test/rsum_at_external_n": rsum + 20.0,
                      "test/rsum_at_external_n_std": 3.0})
    return m


def run(run_id: str, rsum: float, baseline: str | None = None, frames: int = 8, **kw):
    tags = {"cmr.baseline": baseline} if baseline else {}
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(
        metrics=metrics(rsum, **kw), params={"data.views": FULL_COMBO, "data.frames": str(frames)}, tags=tags))


def rows_of(text: str, title_start: str) -> list[list[str]]:
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(title_start)) + 2
    j = next((k for k in range(i, len(lines)) if not lines[k].startswith("|")), len(lines))
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[i:j]]


def test_findings_table_internal_and_external_side_by_side():
    text = findings_table(run("a", 200.0))
    rows = rows_of(text, "### Findings")
    assert rows[0] == ["Finding", "Zero-shot prompt AUC", "Zero-shot prompt AUC (external)", "Probe AUC",
                       "Probe AUC (external)", "Prototypes n=16 AUC", "Prototypes n=16 AUC (external)"]
    assert [r[0] for r in rows[2:]] == list(FINDINGS)
    assert rows[2][1:] == ["0.75", "0.65", "0.90", "0.80", "0.76 ± 0.05", "0.66 ± 0.05"]
    assert "nothing fitted there" in text


def test_findings_table_without_external_says_how_to_get_it():
    text = findings_table(run("a", 200.0, ext=False))
    assert rows_of(text, "### Findings")[0] == ["Finding", "Zero-shot prompt AUC", "Probe AUC", "Prototypes n=16 AUC"]
    assert "eval.external" in text
    assert findings_table(run("b", 1.0, ext=False, findings=False)) == ""


def test_drop_table_every_run_with_external_metrics():
    runs = [run("z", 10.0, baseline="zeroshot", frames=16), run("t", 250.0), run("u", 150.0, ext=False)]
    text = drop_table(runs)
    rows = rows_of(text, "### Internal test split")
    assert rows[0] == ["Model", "Studies", "RSUM, equal gallery", "RSUM, whole sets (not comparable)", "5-class Acc",
                       "NICM AUC", "ICM AUC", "AMYL AUC", "HCM AUC"]
    assert len(rows) == 2 + 2  # the run without external metrics is left out
    # the drop is read at the external cohort's 150 studies: internal 30.0 there, external -20.0
    assert rows[2][:4] == ["Zero-shot (16)", "202 → 150", "30.0 → -20.0 (50.0); n = 150, chance 86.7",
                           "10.0 → -20.0; chance 64.4 → 86.7"]
    assert rows[3][4:6] == ["0.700 → 0.600 (0.100)", "0.800 → 0.700 (0.100)"]
    assert "chance RSUM" in text and "test/rsum_at_external_n" in text
    assert drop_table([run("u", 1.0, ext=False)]) == ""


def test_drop_table_without_the_equal_gallery_keys_shows_no_rsum_drop():
    """A run logged before the equal-gallery keys: its RSUMs are shown, never subtracted."""
    rows = rows_of(drop_table([run("t", 250.0, equal=False)]), "### Internal test split")
    assert rows[2][1:4] == ["– → 150", "–", "250.0 → 220.0"]


def test_drop_table_reads_a_larger_external_cohort_at_the_internal_size():
    r = run("t", 250.0, equal=False)
    r.data.metrics.update({"test/n_studies": 100.0, "external/n_studies": 150.0,
                           "external/test/rsum_at_internal_n": 240.0})
    rows = rows_of(drop_table([r]), "### Internal test split")
    assert rows[2][1:4] == ["100 → 150", "250.0 → 240.0 (10.0); n = 100, chance 130.0",
                            "250.0 → 220.0; chance 130.0 → 86.7"]


def test_best_trial_picked_by_id_else_by_rsum():
    runs = [run("z", 999.0, baseline="zeroshot"), run("a", 100.0), run("b", 200.0)]
    assert pick_run(runs, "a").info.run_id == "a"
    assert pick_run(runs, None).info.run_id == "b"  # a baseline is never the best trial
    seeded = SimpleNamespace(info=SimpleNamespace(run_id="s0"), seeds=[run("s0", 1.0), run("s1", 1.0)],
                             data=run("s0", 1.0).data)
    assert pick_run([seeded], "s1") is seeded
    assert external_report([run("u", 1.0, ext=False, findings=False)]) == ""


def _log(c, exp, parent, m, tags, frames=8):
    rid = c.create_run(exp, tags={"mlflow.parentRunId": parent, **tags}).info.run_id
    tracking.log_params(c, rid, {"data.views": FULL_COMBO, "data.frames": frames})
    tracking.log_metrics(c, rid, m)
    tracking.set_status(c, rid, "FINISHED")
    return rid


def test_render_report_prints_both_tables(workdir):
    from cmr_ray.tune.report import render_report

    c = tracking.client()
    exp = tracking.ensure_experiment(c, "views")
    parent = tracking.start_parent(c, exp, "k", "views", {})
    best = _log(c, exp, parent, metrics(300.0), {"cmr.kind": "trial", "cmr.trial_index": "0", "cmr.trial_key": "k0"})
    _log(c, exp, parent, metrics(100.0, findings=False), {"cmr.kind": "trial", "cmr.trial_index": "1",
                                                         "cmr.trial_key": "k1"}, frames=4)
    _log(c, exp, parent, metrics(5.0, findings=False), {"cmr.kind": "baseline", "cmr.baseline": "zeroshot"}, frames=16)
    c.set_tag(parent, "cmr.best_run_id", best)
    text = render_report(c, "views", intervals=False, figure=False)
    rows = rows_of(text, "### Findings")
    assert len(rows) == 2 + len(FINDINGS) and rows[2][3:5] == ["0.90", "0.80"]
    drop = rows_of(text, "### Internal test split")
    assert [r[0] for r in drop[2:]] == ["Zero-shot (16)", "CINE_lax-sax + LGE_lax-sax-2ch-3ch (8)",
                                        "CINE_lax-sax + LGE_lax-sax-2ch-3ch (4)"]
    assert drop[3][2] == "320.0 → 270.0 (50.0); n = 150, chance 86.7"
