"""A sweep's baselines (`sweep.baselines`): the config keys, SimCLR's step budget, the MLflow
bookkeeping of `run_baselines` (no Ray), and one real sweep whose baselines are computed
once each as child runs and not again on `--resume` (fake trials, real baselines)."""
from __future__ import annotations

import math
import os

import pytest

from cmr_ray import tracking
from cmr_ray.config import ConfigError, load_config
from tests.tune.conftest import REPO

FULL = "cine:4ch+sax|lge:sax+4ch+2ch+3ch"


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    from tests.model.fakes import write_tiny_text_model

    return write_tiny_text_model(tmp_path_factory.mktemp("tiny-bert"))


def _exp(tmp_path, sweep: str):
    p = tmp_path / "exp.yaml"
    p.write_text(f"base: {REPO / 'experiments' / 'smoke.yaml'}\nsweep: {{experiment: b, {sweep}}}\n")
    return p


def test_config_keys_default_none_and_reject_unknown_names(tmp_path):
    from cmr_ray.tune.baselines import expand_baselines

    cfg = load_config(REPO / "experiments" / "smoke.yaml")
    assert cfg["sweep"]["baselines"] == [] and cfg["sweep"]["baseline_trial"] == {}
    assert expand_baselines(cfg) == []
    with pytest.raises(ConfigError) as e:
        load_config(_exp(tmp_path, "baselines: [zeroshot, moco]"))
    msg = str(e.value)
    assert "\n" not in msg and "exp.yaml" in msg and "'sweep.baselines'" in msg and "zeroshot, simclr" in msg
    with pytest.raises(ConfigError, match=r"sweep\.baseline_trial.*data\.framez"):
        load_config(_exp(tmp_path, "baselines: [zeroshot], baseline_trial: {data.framez: 16}"))
    with pytest.raises(ConfigError, match=r"sweep\.baseline_trial\.data\.frames"):
        load_config(_exp(tmp_path, "baselines: [zeroshot], baseline_trial: {data.frames: 0}"))


def test_expand_baselines_names_keys_and_config(tmp_path):
    from cmr_ray.tune.baselines import expand_baselines, is_baseline_key

    cfg = load_config(_exp(tmp_path, f'baselines: [zeroshot, simclr], baseline_trial: {{data.views: "{FULL}", data.frames: 16}}'))
    zs, sc = expand_baselines(cfg)
    assert (zs.key, sc.key) == ("baseline-zeroshot", "baseline-simclr") and is_baseline_key(zs.key)
    assert zs.title == "Zero-shot (untrained tower) · CINE_lax-sax + LGE_lax-sax-2ch-3ch · 16 frames"
    assert sc.title.startswith("SimCLR (image-only pretraining) · ")
    assert zs.cfg["data"]["views"] == FULL and zs.cfg["data"]["frames"] == 16 and cfg["data"]["frames"] == 4
    assert zs.config_key == sc.config_key


def test_views_yaml_asks_for_both_baselines_on_the_full_combo_at_16_frames():
    from cmr_ray.tune.baselines import expand_baselines
    from cmr_ray.views import paper_name

    bases = expand_baselines(load_config(REPO / "experiments" / "views.yaml"))
    assert [b.name for b in bases] == ["zeroshot", "simclr"]
    assert all(b.cfg["data"]["frames"] == 16 and paper_name(b.cfg["data"]["views"]) == paper_name(FULL)
               for b in bases)


def test_simclr_budget_is_train_steps_when_set_else_epochs(tmp_path, tiny_text, capsys):
    from cmr_ray.eval.simclr import budget_steps, train_simclr
    from tests.model.fakes import write_fake_store

    tr = load_config(None, {"train.epochs": 3}).train
    assert budget_steps(tr, 5) == 15 and budget_steps(load_config(None, {"train.epochs": 3, "train.steps": 0}).train, 5) == 15
    assert budget_steps(load_config(None, {"train.epochs": 3, "train.steps": 7}).train, 5) == 7
    store = write_fake_store(tmp_path / "store", studies=30, size=16)
    cfg = load_config(None, {"data.store": store, "data.image_size": 16, "data.views": "cine:sax", "data.frames": 2,
                             "model.hidden_size": 16, "model.layers": 1, "model.heads": 2, "model.patch_size": 8,
                             "model.embed_dim": 16, "model.text_model": tiny_text, "train.batch_size": 8,
                             "train.epochs": 1})
    cfg = cfg.replace("train.steps", 5)  # 2 steps per pass over 21 train studies: 3 passes, the last one partial
    history = []
    train_simclr(cfg, store, history=history)
    err = capsys.readouterr().err
    assert "simclr epoch 3/3" in err and "(step 5/5," in err and "epoch 4" not in err
    assert "× ln 15 (step" in err                      # batch 8: each view has 2·8 - 1 candidates
    assert [(h["epoch"], h["step"], h["candidates"]) for h in history] == [(1, 2, 15), (2, 4, 15), (3, 5, 15)]
    assert all(0 < h["train/loss"] < 10 for h in history)


def test_run_baselines_logs_metrics_failures_and_skips_finished(workdir):
    from cmr_ray.tune.baselines import expand_baselines, run_baselines

    cfg = load_config(_exp(workdir, "baselines: [zeroshot, simclr]"))
    bases = expand_baselines(cfg)
    c = tracking.client()
    exp = tracking.ensure_experiment(c, "b")
    parent = tracking.start_parent(c, exp, "k", "b", {})

    def job(name, cfg, params_cfg, run_id, uri):
        if name == "simclr":
            raise ValueError("store: SimCLR needs at least 2 training studies\nsecond line")
        return {"test/rsum": 12.5, "probe/acdc_acc": 0.4, "probe/hcm_auc": float("nan")}

    lines = []
    status = run_baselines(c, exp, parent, bases, c.tracking_uri, echo=lines.append, remote=False, job=job)
    assert status == {"baseline-zeroshot": "FINISHED", "baseline-simclr": "FAILED"}
    runs = tracking.child_runs(c, exp, parent)
    zs, sc = runs["baseline-zeroshot"], runs["baseline-simclr"]
    assert zs.data.metrics == {"test/rsum": 12.5, "probe/acdc_acc": 0.4}
    assert zs.data.tags["cmr.baseline"] == "zeroshot" and zs.data.tags["cmr.kind"] == "baseline"
    assert zs.data.params["data.views"] == cfg["data"]["views"] and "train.epochs" in zs.data.params
    assert sc.data.tags["cmr.error"] == "ValueError: second line" and sc.data.tags["cmr.outcome"] == "failed"
    assert any(ln.startswith("baseline simclr: FAILED after") for ln in lines)
    assert any(ln.startswith("baseline zeroshot: done in") and "test/rsum=12.500" in ln for ln in lines)

    lines.clear()
    status = run_baselines(c, exp, parent, bases, c.tracking_uri, echo=lines.append, remote=False,
                           job=lambda name, *a: {"test/rsum": 1.0, **({"simclr/loss_ratio": 0.97} if name == "simclr" else {})})
    assert ("baseline simclr: WARNING: COLLAPSED (learned nothing): final NT-Xent loss 0.97 × ln(2B - 1)"
            in lines)                                                     # its plateau is said, not only logged
    assert not any("zeroshot: WARNING" in ln for ln in lines)
    assert status == {"baseline-zeroshot": "FINISHED", "baseline-simclr": "FINISHED"}
    after = tracking.child_runs(c, exp, parent)
    assert after["baseline-zeroshot"].info.end_time == zs.info.end_time    # finished: not computed again
    assert after["baseline-simclr"].info.run_id == sc.info.run_id          # failed: its run reused
    assert any("baseline zeroshot: already finished" in ln for ln in lines)


def test_simclr_loss_is_on_a_head_that_the_probed_tower_does_not_keep(tmp_path, tiny_text, monkeypatch):
    import torch

    import cmr_ray.eval.simclr as simclr
    from cmr_ray.model import build_model
    from tests.model.fakes import write_fake_store

    store = write_fake_store(tmp_path / "store", studies=20, size=16)
    cfg = load_config(None, {"data.store": store, "data.image_size": 16, "data.views": "cine:sax", "data.frames": 2,
                             "model.hidden_size": 16, "model.layers": 1, "model.heads": 2, "model.patch_size": 8,
                             "model.embed_dim": 16, "model.text_model": tiny_text, "train.batch_size": 8,
                             "train.steps": 2})
    seen, loss = [], simclr.nt_xent

    def spy(z1, z2, temperature):
        seen.append(z1.detach())
        return loss(z1, z2, temperature)

    monkeypatch.setattr(simclr, "nt_xent", spy)
    model = simclr.train_simclr(cfg, store, progress=False)
    assert len(seen) == 2 and seen[0].shape == (8, 16)
    assert not torch.allclose(seen[0].norm(dim=-1), torch.ones(8))   # not encode_video's unit vectors: the head's
    assert model.state_dict().keys() == build_model(cfg).state_dict().keys()   # the head is not kept
    again = simclr.train_simclr(cfg, store, progress=False)               # seeded: the same tower again
    x = torch.rand(2, 2, 16, 16)
    assert torch.equal(model.encode_video(x), again.encode_video(x))


def test_the_baseline_that_trains_gets_the_idle_cores_and_its_run_says_so(workdir):
    from cmr_ray.tune.baselines import expand_baselines, launch_cfg, run_baselines

    cfg = load_config(_exp(workdir, "baselines: [zeroshot, simclr]"), {"train.torch_threads": 1})
    zs, sc = expand_baselines(cfg)
    assert launch_cfg(sc, sc.cfg, 2).train.torch_threads == 2        # SimCLR trains: all the cores
    assert launch_cfg(zs, zs.cfg, 2).train.torch_threads == 1        # evaluation only: as configured
    assert launch_cfg(sc, sc.cfg, 0).train.torch_threads == 1        # not the sweep's own machine
    assert launch_cfg(sc, sc.cfg.replace("train.use_gpu", True), 2).train.torch_threads == 1
    c = tracking.client()
    exp = tracking.ensure_experiment(c, "threads")
    parent = tracking.start_parent(c, exp, "k", "threads", {})
    seen = {}

    def job(name, run_cfg, params_cfg, run_id, uri):
        seen[name] = (run_cfg.train.torch_threads, params_cfg.train.torch_threads)
        return {"test/rsum": 1.0}

    run_baselines(c, exp, parent, [zs, sc], c.tracking_uri, echo=lambda _: None, remote=False, job=job, cores=2)
    assert seen == {"zeroshot": (1, 1), "simclr": (2, 1)}               # params keep the experiment's value
    runs = tracking.child_runs(c, exp, parent)
    assert {k: r.data.tags["cmr.torch_threads"] for k, r in runs.items()} == {"baseline-zeroshot": "1",
                                                                              "baseline-simclr": "2"}
    assert runs["baseline-simclr"].data.params["train.torch_threads"] == "1"
    assert sc.key == expand_baselines(cfg)[1].key                       # the threads are not in its key


@pytest.mark.integration
def test_sweep_computes_each_baseline_once_as_a_child_run(workdir, fakes, ray_local, tiny_text):
    from cmr_ray.tune import run_sweep
    from cmr_ray.tune.trainable import store_impressions
    from tests.model.fakes import write_fake_store

    write_fake_store(workdir / "store", studies=60, size=32)
    exp = workdir / "basesweep.yaml"
    exp.write_text(
        f"base: {REPO / 'experiments' / 'smoke.yaml'}\n"
        f"data: {{store: store}}\nmodel: {{text_model: {tiny_text}}}\ntrain: {{storage_path: ray_results}}\n"
        "sweep:\n  experiment: basesweep\n"
        "  trials: [{data.views: 'cine:sax'}, {data.views: 'cine:sax+4ch|lge:sax'}]\n"
        "  baselines: [zeroshot, simclr]\n"
        f"  baseline_trial: {{data.views: '{FULL}', data.frames: 8}}\n")
    lines = []
    out = run_sweep(exp, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval, model_loader=fakes.fake_loader,
                    echo=lines.append)
    c = tracking.client()
    kids = c.search_runs([out["experiment_id"]], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")
    bases = {r.data.tags["cmr.baseline"]: r for r in kids if "cmr.baseline" in r.data.tags}
    assert len(kids) == 4 and set(bases) == {"zeroshot", "simclr"}
    assert c.get_run(out["parent_run_id"]).info.status == "FINISHED"
    assert out["best_run_id"] not in {r.info.run_id for r in bases.values()}
    assert out["baselines"] == {n: r.info.run_id for n, r in bases.items()}
    for name, r in bases.items():
        assert r.info.status == "FINISHED" and r.data.tags["cmr.trial_key"] == f"baseline-{name}"
        assert r.info.run_name.endswith("· CINE_lax-sax + LGE_lax-sax-2ch-3ch · 8 frames")
        assert r.data.params["data.views"] == FULL and r.data.params["data.frames"] == "8"
        assert r.data.params["train.epochs"] == "2" and r.data.params["model.text_model"] == tiny_text
        assert {"test/t2v_r5", "test/rsum", "probe/acdc_acc", "probe/hcm_auc"} <= set(r.data.metrics)
        assert not any(k.startswith("baseline/") for k in r.data.metrics)  # a trial's keys, unprefixed
        arts = {a.path for a in c.list_artifacts(r.info.run_id)} | {a.path for a in c.list_artifacts(r.info.run_id, "eval")}
        assert {"config.yaml", "eval/tables.md", "eval/retrieval.csv", "eval/probe_acdc.csv"} <= arts
        assert sum(ln.startswith(f"baseline {name}: done in") for ln in lines) == 1
    assert bases["zeroshot"].info.run_name.startswith("Zero-shot (untrained tower)")
    curve = c.get_metric_history(bases["simclr"].info.run_id, "simclr/loss")   # SimCLR's loss curve, per epoch
    assert sorted(m.step for m in curve) == [1, 2] and all(0 < m.value < 10 for m in curve)
    ratio = bases["simclr"].data.metrics["simclr/loss_ratio"]
    assert ratio == pytest.approx(max(curve, key=lambda m: m.step).value / math.log(2 * 16 - 1))  # smoke: batch 16
    assert bases["simclr"].data.tags["cmr.learning"] in ("learned", "slow", "collapsed")
    assert "simclr/loss" not in bases["zeroshot"].data.metrics and "cmr.learning" not in bases["zeroshot"].data.tags
    assert bases["simclr"].data.tags["cmr.torch_threads"] == str(os.cpu_count())   # the sweep's own Ray: every core
    assert bases["zeroshot"].data.tags["cmr.torch_threads"] == bases["zeroshot"].data.params["train.torch_threads"]
    impressions = [t.encode() for t in store_impressions(str(workdir / "store"))]
    blob = b"".join(p.read_bytes() for p in (workdir / "mlartifacts").rglob("*") if p.is_file())
    assert impressions and not any(t in blob for t in impressions)

    lines.clear()
    again = run_sweep(exp, resume=True, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                      model_loader=fakes.fake_loader, echo=lines.append)
    assert again["parent_run_id"] == out["parent_run_id"] and again["runs"] == out["runs"]
    assert "--resume: 2 of 2 trial(s) already finished; running the other 0" in lines
    assert not any(": done in" in ln for ln in lines)
    for name, r in bases.items():
        assert f"baseline {name}: already finished (run {r.info.run_id}); not computed again" in lines
        assert c.get_run(r.info.run_id).info.end_time == r.info.end_time
    assert len(c.search_runs([out["experiment_id"]])) == 5
