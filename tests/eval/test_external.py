"""External-cohort evaluation (`cmr_ray.eval.external`): every metric again on another site's
store, with the probes, prompt thresholds and prototypes of the internal fit split; the
external labels reach only the scoring (permuting them moves no fitted thing); the synthetic
stand-in built once beside the store; bad settings in one line."""
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from cmr_ray.config import ConfigError, apply_overrides, load_config
from cmr_ray.eval import external, probe, prototypes, zeroshot
from cmr_ray.eval.embed import Embeddings
from cmr_ray.eval.evaluation import evaluate_method, fresh_model, write_outputs
from cmr_ray.eval.zeroshot import FINDING_PROMPTS, PROMPTS, prompt_direction



def _eval_conftest():
    """tests/eval/conftest.py by its path (the module name 'conftest' may name another
    directory's by the time a test runs)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("eval_conftest", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_helpers = _eval_conftest()
fake_rows, tiny_cfg, write_store = _helpers.fake_rows, _helpers.tiny_cfg, _helpers.write_store
DIM = 32
TASKS = ["hcm", "lv_dilation"]


def hash_encoder(texts):
    """Fake text tower: a fixed random unit vector per text."""
    out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=DIM) for t in texts])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def planted(n: int, seed: int) -> Embeddings:
    """Studies whose video embedding carries each task along its prompt direction; text near video."""
    rng = np.random.default_rng(seed)
    labels = {t: (rng.random(n) < 0.4).astype(float) for t in TASKS}
    v = rng.normal(scale=0.3, size=(n, DIM))
    for t in TASKS:
        d = prompt_direction(hash_encoder, *(PROMPTS.get(t) or FINDING_PROMPTS[t]))
        v += np.outer(labels[t], d / np.linalg.norm(d))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    text = v + rng.normal(scale=0.05, size=v.shape).astype(np.float32)
    keys = [f"s{seed}-{i}" for i in range(n)]
    return Embeddings(v, text / np.linalg.norm(text, axis=1, keepdims=True), labels, keys,
                      [f"p{seed}-{i}" for i in range(n)], ["imp"] * n)


def permuted(e: Embeddings, seed: int) -> Embeddings:
    order = np.random.default_rng(seed).permutation(len(e))
    return Embeddings(e.video, e.text, {k: v[order] for k, v in e.labels.items()}, e.study_keys, e.patient_keys,
                      e.impressions)


def test_permuting_the_external_labels_moves_no_fitted_probe_threshold_or_prototype(monkeypatch):
    cfg = tiny_cfg(**{"eval.bootstrap": 50, "eval.prototype_shots": [1, 4], "eval.prototype_episodes": 30})
    fit, test, ext = planted(200, 0), planted(60, 1), planted(80, 2)
    _, outcomes, _ = probe.probe_tasks(fit.video, fit.labels, test.video, test.labels, TASKS, seed=0)
    coefs = {t: o.model.named_steps["lr"].coef_.copy() for t, o in outcomes.items()}

    def no_fit(*a, **k):
        raise AssertionError("a probe was fitted during the external scoring")
    monkeypatch.setattr(probe, "run_probe", no_fit)
    monkeypatch.setattr(probe, "fit_probe", no_fit)
    fitted = []  # (what, value) of every threshold and prototype set the scoring made
    real_thr, real_protos = zeroshot.choose_threshold, prototypes.prototypes
    monkeypatch.setattr(zeroshot, "choose_threshold",
                        lambda s, y: fitted.append(("thr", len(s), real_thr(s, y))) or fitted[-1][2])
    monkeypatch.setattr(prototypes, "prototypes",
                        lambda x, picks: fitted.append(("protos", len(x), real_protos(x, picks))) or fitted[-1][2])

    runs = []
    for e in (ext, permuted(ext, 3)):
        fitted.clear()
        m, extras, _ = external.score_external(cfg, fit, outcomes, TASKS, e, encode_text=hash_encoder)
        runs.append((m, list(fitted)))
    (m1, f1), (m2, f2) = runs
    assert len(f1) == len(f2) == 2 + 2 * 2  # a threshold per task, prototypes per task and n
    assert all(n == len(fit) or what == "protos" for what, n, _ in f1)  # thresholds from the fit split's scores
    for (w1, n1, v1), (w2, n2, v2) in zip(f1, f2):
        assert w1 == w2 and n1 == n2 and np.array_equal(v1, v2)
    assert all(np.array_equal(coefs[t], o.model.named_steps["lr"].coef_) for t, o in outcomes.items())
    # only the external scores move: the planted signal is found, and lost under permutation
    for key in ("external/probe/hcm_auc", "external/zeroshot_prompt/lv_dilation_auc", "external/fewshot_proto/hcm_auc_k4"):
        assert m1[key] > 0.8, (key, m1[key])
        assert abs(m2[key] - 0.5) < 0.2, (key, m2[key])
    assert m1["external/test/rsum"] == m2["external/test/rsum"] > 0 and m1["external/n_studies"] == 80
    assert m1["external/probe/hcm_auc_lo"] <= m1["external/probe/hcm_auc"] <= m1["external/probe/hcm_auc_hi"]
    assert m1["external/test/rsum_lo"] <= m1["external/test/rsum"] <= m1["external/test/rsum_hi"]


def test_a_task_the_external_store_lacks_is_noted_not_scored():
    cfg = tiny_cfg(**{"eval.bootstrap": 0, "eval.prototype_shots": []})
    fit, test, ext = planted(100, 0), planted(40, 1), planted(30, 2)
    ext.labels["lv_dilation"][:] = np.nan
    _, outcomes, _ = probe.probe_tasks(fit.video, fit.labels, test.video, test.labels, TASKS)
    m, _, notes = external.score_external(cfg, fit, outcomes, TASKS, ext)
    assert "external/probe/hcm_auc" in m and not any("lv_dilation" in k for k in m)
    assert "external: lv_dilation: the external store has no label for it; not scored" in notes


def test_equal_gallery_scores_the_larger_set_at_the_smaller_ones_size():
    from cmr_ray.eval.retrieval import chance_rsum, retrieval_metrics_from_embeddings

    def vague(e: Embeddings, seed: int) -> Embeddings:  # a report finds its study only now and then
        rng = np.random.default_rng(seed)
        text = e.video + rng.normal(scale=0.6, size=e.video.shape).astype(np.float32)
        return Embeddings(e.video, text, e.labels, e.study_keys, e.patient_keys, e.impressions)

    cfg = tiny_cfg(**{"train.seed": 4})
    internal, ext = vague(planted(90, 0), 0), vague(planted(60, 1), 1)
    m = external.equal_gallery_metrics(cfg, internal, ext)
    assert set(m) == {"test/n_studies", "test/rsum_at_external_n", "test/rsum_at_external_n_std"}
    assert m["test/n_studies"] == 90
    full = retrieval_metrics_from_embeddings(internal.text, internal.video)["rsum"]
    assert m["test/rsum_at_external_n"] > full  # the same embeddings rank better among fewer studies
    assert m == external.equal_gallery_metrics(cfg, internal, ext)  # seeded by train.seed
    # equal sizes: the subsets are the whole split, so the value is test/rsum itself
    same = external.equal_gallery_metrics(cfg, internal, vague(planted(90, 2), 2))
    assert same["test/rsum_at_external_n"] == pytest.approx(full)
    assert same["test/rsum_at_external_n_std"] == pytest.approx(0.0, abs=1e-9)
    # a larger external cohort is the one scored at the other's size
    m = external.equal_gallery_metrics(cfg, ext, internal)
    assert set(m) == {"test/n_studies", "external/test/rsum_at_internal_n", "external/test/rsum_at_internal_n_std"}
    # the drop of one method's metrics reads both at one size, and prints each size's chance
    metrics = {"test/rsum": 300.0, "test/n_studies": 202.0, "test/rsum_at_external_n": 320.0,
               "external/test/rsum": 290.0, "external/n_studies": 150.0}
    assert external.equal_gallery_rsum(metrics) == (320.0, 290.0, 150)
    text = external.drop_markdown(metrics)
    assert f"| test/rsum at equal gallery (n = 150; chance {chance_rsum(150):.1f}) | 320.000 | 290.000 | 30.000 |" in text
    assert "| test/rsum, whole sets (n = 202 → 150; chance 64.4 → 86.7) | 300.000 | 290.000 | not comparable |" in text
    older = {k: v for k, v in metrics.items() if k != "test/rsum_at_external_n"}  # a run before the key
    assert external.equal_gallery_rsum(older) is None and "equal gallery" not in external.drop_markdown(older)


@pytest.fixture(scope="module")
def external_store(tmp_path_factory):
    rows = fake_rows(45, seed=9)
    for i, r in enumerate(rows):
        r["study_key"], r["patient_key"] = f"x{i:04d}", f"xp{i:04d}"
    return write_store(tmp_path_factory.mktemp("external"), rows)


def test_evaluate_method_scores_every_method_on_the_external_store(fake_store, external_store, cfg, tmp_path):
    cfg = apply_overrides(cfg, {"eval.external": external_store, "eval.bootstrap": 20, "eval.few_shot": [],
                                "eval.prototype_shots": [1], "eval.prototype_episodes": 20})
    metrics, extras, notes = evaluate_method(fresh_model(cfg), cfg, fake_store, prompts=True, progress=False)
    for key in ("external/test/rsum", "external/test/rsum_lo", "external/probe/nicm_auc", "external/probe/acdc_acc",
                "external/probe/hcm_f1_hi", "external/zeroshot_prompt/hcm_auc", "external/fewshot_proto/acdc_acc_k1",
                "external/fewshot_proto/acdc_acc_k1_std"):
        assert key in metrics, key
    assert metrics["external/n_studies"] == 44  # every split; one study lacks the LGE view
    assert len(extras["external"]["test"]) == 44
    # the external cohort is the larger here: it is scored again at the internal test split's size
    n_test = len(extras["test"])
    assert metrics["test/n_studies"] == n_test < 44
    assert "external/test/rsum_at_internal_n" in metrics and "test/rsum_at_external_n" not in metrics
    write_outputs(tmp_path, "header", {}, notes, metrics, extras)
    drop = (tmp_path / "external.md").read_text()
    assert f"| test/rsum at equal gallery (n = {n_test}; chance" in drop and "| probe/acdc_acc |" in drop
    assert f"| test/rsum, whole sets (n = {n_test} → 44; chance" in drop
    assert "Internal test split vs external cohort" in (tmp_path / "tables.md").read_text()
    # a baseline (no prompts): the same keys less the prompt ones
    metrics, _, _ = evaluate_method(fresh_model(cfg), cfg, fake_store, prompts=False, progress=False)
    assert "external/probe/hcm_auc" in metrics and not any("zeroshot_prompt" in k for k in metrics)


def test_synthetic_stand_in_is_built_once_beside_the_store(tmp_path, monkeypatch):
    made = []

    def fake_generate(out, studies, seed, protocol="small", workers=None, progress=True, site="internal"):
        made.append((studies, seed, protocol, site))
        (tmp_path / "cmr_store" / "syn-external" / "cohort").mkdir(parents=True, exist_ok=True)
        marker = {"studies": studies, "seed": seed, "protocol": protocol, "site": site}
        (tmp_path / "cmr_store" / "syn-external" / "cohort" / "cohort.json").write_text(json.dumps(marker))

    def fake_prepare(dicom, reports, out, labels=None, cfg=None, address=None, num_cpus=None, progress=True):
        assert dicom.endswith("syn-external/cohort/dicom") and labels.endswith("cohort/labels.csv")
        write_store(Path(out), fake_rows(6))
        return type("S", (), {"ok": True, "text": "prepared"})()

    monkeypatch.setattr("cmr_ray.synth.generate_cohort", fake_generate)
    monkeypatch.setattr("cmr_ray.data.prepare.prepare", fake_prepare)
    cfg = load_config(None, {"data.store": str(tmp_path / "cmr_store" / "syn"), "data.image_size": 16,
                             "data.synth_seed": 2, "eval.external": "synthetic", "eval.external_studies": 40})
    store = external.ensure_external_store(cfg, progress=False)
    assert store == str(tmp_path / "cmr_store" / "syn-external" / "store")
    assert made == [(40, 2 + external.SYNTH_SEED_OFFSET, "small", "external")]
    assert external.ensure_external_store(cfg, progress=False) == store and len(made) == 1  # reused
    with pytest.raises(ValueError, match=r"holds 16 px clips but data.image_size is 32") as e:
        external.ensure_external_store(apply_overrides(cfg, {"data.image_size": 32}), progress=False)
    with pytest.raises(ValueError, match=r"has studies 40 but the config asks for studies 99") as e:
        external.ensure_external_store(apply_overrides(cfg, {"eval.external_studies": 99}), progress=False)
    assert "\n" not in str(e.value)
    assert external.ensure_external_store(load_config(None, {}), progress=False) is None


@pytest.mark.parametrize("value", [5, ["a"], " padded "])
def test_bad_eval_external_is_a_one_line_config_error(tmp_path, value):
    path = tmp_path / "x.yaml"
    path.write_text(json.dumps({"eval": {"external": value}}))
    with pytest.raises(ConfigError, match=r"key 'eval.external' expected") as e:
        load_config(path)
    assert "\n" not in str(e.value)


def test_missing_external_store_is_one_line_before_any_work(cfg, tmp_path):
    from cmr_ray.eval.evaluation import evaluate_model

    bad = apply_overrides(cfg, {"eval.external": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError) as e:
        evaluate_model(None, bad, str(tmp_path / "nostore"), tmp_path / "out")
    assert str(e.value).startswith("eval.external: ") and "not a clip store" in str(e.value)
    assert "\n" not in str(e.value)


def test_sweep_makes_the_external_path_absolute(tmp_path, monkeypatch):
    from cmr_ray.tune.sweep import absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, {"eval.external": "site_b"})
    assert absolute_paths(cfg)["eval"]["external"] == str(tmp_path / "site_b")
    for v in ("synthetic", "s3://bucket/site_b", ""):
        assert absolute_paths(load_config(None, {"eval.external": v}))["eval"]["external"] == v
