"""Evaluate a checkpoint: retrieval, probes, zero-shot prompts, few-shot, baselines, tables, plots.

    from cmr_ray.eval import evaluate
    metrics = evaluate("ray_results/cmr-clip/checkpoint_000019", "store", "eval_out",
                       baselines=["zeroshot", "simclr"])
    metrics["test/rsum"], metrics["probe/hcm_auc"], metrics["baseline/zeroshot/test/rsum"]

Per method (ours = the checkpoint; `zeroshot` = the same config's untrained video tower at
train.seed; `simclr` = that tower pretrained image-only, `cmr_ray.eval.simclr`) the test
split is embedded for retrieval and the probes are fitted on train + val studies (patient-
level splits; C by cross-validation on those studies only) and scored on test.
Keys (MLflow-safe): `test/t2v_r5` … `test/rsum`, `probe/<task>_<acc|auc|f1>`,
`baseline/simclr/loss_ratio` (SimCLR's final NT-Xent loss / ln(2B - 1); a note when it did not learn),
`fewshot/<task>_<metric>_k<k>`, `fewshot_proto/<task>_<metric>_k<n>` and `..._std` (few-shot by class
prototypes, `cmr_ray.eval.prototypes`: `eval.prototype_episodes` episodes of n fitting studies per
class, n in `eval.prototype_shots`; every probed task and finding), `zeroshot_prompt/<task>_<metric>` (ours only),
`transfer/<set>/probe/acdc_<acc|auc|f1>` for each set of `eval.transfer`
(`cmr_ray.eval.transfer`: every method, so the sweep's baselines too), `external/...` (every
key above again on `eval.external`'s other-site store, scored with the probes, prompt
thresholds and prototypes fitted on the internal fit split: `cmr_ray.eval.external`; with it
`test/n_studies` and the RSUM of the larger set at the smaller one's gallery size,
`test/rsum_at_external_n` or `external/test/rsum_at_internal_n`, and `..._std`), and
the same under `baseline/<name>/`.  Written to out_dir: the tables (`tables.md`, one .md and .csv per
table, `transfer.md`, `external.md`: internal vs external), `metrics.json`, `notes.txt`, `config.yaml`, `tsne.png`,
`recall_at_k.png`, `confusion_acdc.png`, `transfer_<set>_tsne.png`.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np

from cmr_ray.config import Config
from cmr_ray.eval.retrieval import metrics_from_ranks, retrieval_ranks_from_embeddings

BASELINES = ("zeroshot", "simclr")
FIT_SPLITS = ("train", "val")
METRIC_KEY = re.compile(r"^[/\w.\- ]+$")  # what MLflow accepts as a metric key; tracking checks the same


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def check_baselines(baselines) -> list[str]:
    if isinstance(baselines, str):
        baselines = [b for b in baselines.split(",") if b.strip()]
    out = [str(b).strip() for b in baselines or []]
    bad = [b for b in out if b not in BASELINES]
    if bad:
        raise ValueError(f"baselines: unknown {bad} (known: {', '.join(BASELINES)})")
    return list(dict.fromkeys(out))


def check_eval_config(cfg: Config) -> None:
    """Fail before any embedding work: eval.probes names, eval.few_shot and eval.prototype_shots sizes."""
    from cmr_ray.eval.probe import TASKS

    ev = cfg.eval
    bad = [t for t in ev.probes if t not in TASKS]
    if bad:
        raise ValueError(f"eval.probes: unknown {bad} (known: {', '.join(TASKS)})")
    for name in ("few_shot", "prototype_shots"):
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ev[name]):
            raise ValueError(f"eval.{name}: expected positive integers (examples per class), got {ev[name]}")
    if ev.transfer:
        from cmr_ray.eval.transfer import check_transfer_config

        check_transfer_config(cfg)
    if ev.external:
        from cmr_ray.eval.external import check_external_config

        check_external_config(cfg)


def fresh_model(cfg: Config):
    """The untrained model of `cfg` (random video tower at train.seed): the zero-shot baseline."""
    import torch

    from cmr_ray.model import build_model

    torch.manual_seed(cfg.train.seed)
    return build_model(cfg).eval()


def evaluate_method(model, cfg: Config, store, prompts: bool = False, progress: bool = True):
    """Metrics (unprefixed keys) and artefacts for one model. Returns (metrics, extras, notes)."""
    from cmr_ray.eval.embed import embed_split
    from cmr_ray.eval.probe import few_shot_probes, probe_tasks, tasks_with_findings
    from cmr_ray.eval.zeroshot import zero_shot_prompts

    ev = cfg.eval
    fit = embed_split(model, store, cfg, FIT_SPLITS, progress=progress)
    test = embed_split(model, store, cfg, "test", progress=progress)
    if len(test) == 0:
        raise ValueError(f"{store}: the test split has no studies with {cfg.data.views}")
    ranks = retrieval_ranks_from_embeddings(test.text, test.video, ev.chunk_size)
    metrics = {f"test/{k}": v for k, v in metrics_from_ranks(*ranks).items()}
    tasks = tasks_with_findings(ev.probes, fit.labels, test.labels)  # + every finding both splits carry (issue 20)
    pats = dict(fit_patients=fit.patient_keys, test_patients=test.patient_keys)
    probe_m, outcomes, notes = probe_tasks(fit.video, fit.labels, test.video, test.labels, tasks,
                                           seed=cfg.train.seed, **pats)
    metrics.update({f"probe/{k}": v for k, v in probe_m.items()})
    if ev.few_shot:
        few_m, few_notes = few_shot_probes(fit.video, fit.labels, test.video, test.labels, list(ev.probes),
                                           ev.few_shot, ev.few_shot_seeds, **pats)
        metrics.update({f"fewshot/{k}": v for k, v in few_m.items()})
        notes += [n for n in few_notes if n.split(" (few-shot")[0] not in notes]  # no repeats
    if ev.prototype_shots:
        from cmr_ray.eval.prototypes import prototype_few_shot

        proto_m, proto_notes = prototype_few_shot(fit.video, fit.labels, test.video, test.labels, tasks,
                                                  ev.prototype_shots, ev.prototype_episodes,
                                                  ev.prototype_seed)
        metrics.update({f"fewshot_proto/{k}": v for k, v in proto_m.items()})
        notes += proto_notes
    if ev.readouts and cfg.data.source == "synthetic":  # what the tower carries of the cohort's draws
        from cmr_ray.eval.nuisance import readout_metrics

        ro_m, ro_notes = readout_metrics(store, cfg.data.synth_seed, fit, test)
        metrics.update(ro_m)
        notes += ro_notes
    temp = float(model.logit_scale().reciprocal()) if prompts and hasattr(model, "logit_scale") else 0.05
    if prompts:
        zs_m, zs_notes = zero_shot_prompts(model.encode_text, fit.video, fit.labels, test.video,
                                           test.labels, tasks, temperature=temp)
        metrics.update({f"zeroshot_prompt/{k}": v for k, v in zs_m.items()})
        notes += zs_notes
    if ev.bootstrap:
        from cmr_ray.eval.bootstrap import interval_metrics

        iv, iv_notes = interval_metrics(ranks, outcomes, test.labels, ev.bootstrap, cfg.train.seed)
        metrics.update(iv)
        notes += iv_notes
    extras = {"ranks": ranks, "test": test, "outcomes": outcomes, "n_fit": len(fit)}
    if ev.transfer:  # every method (trial, zero-shot, SimCLR) on the public transfer sets
        from cmr_ray.eval.transfer import evaluate_transfer

        tr_m, extras["transfer"], tr_notes = evaluate_transfer(model, cfg, progress=progress)
        metrics.update(tr_m)
        notes += tr_notes
    if ev.external:  # another site's cohort, scored with what was fitted on `fit` (issue 20)
        from cmr_ray.eval.external import evaluate_external

        ex_m, extras["external"], ex_notes = evaluate_external(
            model, cfg, fit, outcomes, tasks, encode_text=model.encode_text if prompts else None, temperature=temp,
            progress=progress)
        metrics.update(ex_m)
        notes += ex_notes
        if extras["external"]:  # RSUM of both sets at one gallery size: the drop compares like with like
            from cmr_ray.eval.external import equal_gallery_metrics

            metrics.update(equal_gallery_metrics(cfg, test, extras["external"]["test"]))
    return metrics, extras, notes


def write_outputs(out: Path, header: str, tables: dict, notes: list[str], metrics: dict, extras: dict | None = None,
                  transfer_rows: dict | None = None) -> None:
    """The evaluation's files in `out`: the tables (`tables.md` under `header`, one .md and
    .csv per table), `notes.txt`, `metrics.json` (NaN as null) and, given the method's
    `extras`, `per_study.npz` (test ranks and probe predictions per study, for paired
    comparisons between runs: `bootstrap.per_study_record`).  Transfer sets
    (`cmr_ray.eval.transfer.write_transfer_outputs`): `transfer.md`, appended to `tables.md`,
    and `transfer_<set>_tsne.png`, from `transfer_rows` ({method title: (unprefixed metrics,
    {set: extras})}) or else from `metrics` and `extras` as one method's."""
    from cmr_ray.eval.tables import write_tables

    if extras is not None:
        from cmr_ray.eval.bootstrap import per_study_record

        test = extras["test"]
        np.savez_compressed(out / "per_study.npz", **per_study_record(test.study_keys, extras["ranks"],
                                                                      extras["outcomes"], test.labels))
    text = write_tables(tables, out, notes)
    if transfer_rows is None and extras is not None and extras.get("transfer"):
        transfer_rows = {"This model": ({k: v for k, v in metrics.items() if k.startswith("transfer/")},
                                        extras["transfer"])}
    if transfer_rows:
        from cmr_ray.eval.transfer import write_transfer_outputs

        more = write_transfer_outputs(out, transfer_rows)
        text += ("\n\n" + more + "\n") if more else ""
    from cmr_ray.eval.external import drop_markdown

    drop = drop_markdown(metrics)  # the unprefixed method's internal vs external (issue 20)
    if drop:
        (out / "external.md").write_text(drop + "\n")
        text += "\n\n" + drop + "\n"
    (out / "tables.md").write_text(header + "\n\n" + text)
    (out / "notes.txt").write_text("\n".join(notes) + ("\n" if notes else ""))
    (out / "metrics.json").write_text(json.dumps(
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}, indent=1))


def evaluate_model(model, cfg: Config, store, out_dir, baselines=(), progress: bool = True) -> dict:
    """`evaluate` for a model already in memory (same outputs)."""
    from cmr_ray.config import to_yaml
    from cmr_ray.eval import plots
    from cmr_ray.eval.tables import METHOD_NAMES, build_tables, prefix

    baselines = check_baselines(baselines)
    check_eval_config(cfg)
    store = str(store or cfg.data.store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    metrics, extras, notes = {}, {}, []
    for method in (*baselines, "ours"):
        _say(f"eval: {METHOD_NAMES[method]}", progress)
        if method == "ours":
            m = model
        elif method == "zeroshot":
            m = fresh_model(cfg)
        else:
            from cmr_ray.eval.simclr import train_simclr

            history: list[dict] = []
            m = train_simclr(cfg, store, model=fresh_model(cfg).train(), progress=progress, history=history)
        mm, ex, nn = evaluate_method(m, cfg, store, prompts=(method == "ours") and cfg.eval.zero_shot_prompts,
                                     progress=progress)
        if method == "simclr" and history:  # its loss against ln(2B - 1), as the sweep's SimCLR run has it
            from cmr_ray.eval.simclr import simclr_verdict
            from cmr_ray.train.collapse import what_happened

            v = simclr_verdict(history)
            mm["loss_ratio"] = v["loss_ratio"]  # baseline/simclr/loss_ratio: final loss / ln(2B - 1)
            if v["learning"] != "learned":
                nn = [*nn, f"its NT-Xent loss did not learn ({what_happened(v['learning'])}): {v['reason']}"]
        metrics.update({prefix(method) + k: v for k, v in mm.items()})
        extras[method] = ex
        notes += [n if method == "ours" else f"{METHOD_NAMES[method]}: {n}" for n in nn]
    bad = [k for k in metrics if not METRIC_KEY.match(k)]
    if bad:
        raise ValueError(f"metric keys not MLflow-safe ({METRIC_KEY.pattern}): {bad}")
    notes = list(dict.fromkeys(notes))
    methods = [*baselines, "ours"]
    tables = build_tables(metrics, methods, cfg.eval.few_shot, cfg.eval.probes,
                          proto_shots=cfg.eval.prototype_shots)
    test = extras["ours"]["test"]
    header = (f"Test split: {len(test)} studies; probes fitted on {extras['ours']['n_fit']} train+val studies; "
              f"views {cfg.data.views}, {cfg.data.frames} frames.")
    if cfg.eval.plots and "zeroshot" not in extras:  # the paper's Figures 5-6 put zero-shot beside trained
        _say("eval: zero-shot embeddings for the t-SNE figures", progress)
        from cmr_ray.eval.embed import embed_split

        zs = fresh_model(cfg)
        extras["zeroshot"] = {"test": embed_split(zs, store, cfg, "test", progress=progress)}
        if cfg.eval.transfer:
            from cmr_ray.eval.transfer import embed_transfer_test

            extras["zeroshot"]["transfer"] = embed_transfer_test(zs, cfg, progress=progress)
    transfer_rows = {METHOD_NAMES[m]: ({k[len(prefix(m)):]: v for k, v in metrics.items()
                                        if k.startswith(prefix(m) + "transfer/")}, extras[m].get("transfer"))
                     for m in ("zeroshot", "simclr", "ours") if m in extras and extras[m].get("transfer")}
    write_outputs(out, header, tables, notes, metrics, extras["ours"], transfer_rows=transfer_rows)
    if cfg.eval.plots:
        panels = {METHOD_NAMES[m]: (extras[m]["test"].video, extras[m]["test"].labels["acdc"])
                  for m in ("zeroshot", "simclr", "ours") if m in extras}
        plots.tsne_panels(panels, out / "tsne.png", seed=cfg.train.seed)
        plots.recall_curves({METHOD_NAMES[m]: extras[m]["ranks"] for m in methods}, out / "recall_at_k.png")
        acdc = extras["ours"]["outcomes"].get("acdc")
        if acdc is not None and acdc.y_pred is not None:
            from cmr_ray.data.schema import ACDC_CLASSES

            plots.confusion(acdc.y_true, acdc.y_pred, ACDC_CLASSES, out / "confusion_acdc.png",
                            title="5-class linear probe, CMR-CLIP (ours), test split")
    _say(f"eval: tables, plots and metrics written to {out}", progress)
    return metrics


def evaluate(checkpoint, store=None, out_dir="eval_out", cfg=None, baselines=None, overrides=None,
             progress: bool = True) -> dict:
    """Load `checkpoint` (`cmr_ray.train.checkpoint.load_checkpoint`) and evaluate it.

    cfg: a full config to use instead of the checkpoint's (its data/model must match the
    weights); overrides: `--set` style dotted keys applied over it (model.* refused: the
    weights fix the model).  baselines: None means eval.baselines.
    """
    from cmr_ray.config import apply_overrides, parse_override
    from cmr_ray.train.checkpoint import MODEL_FILE, latest_checkpoint_dir, load_checkpoint

    local = Path(str(checkpoint))
    if "://" not in str(checkpoint) and local.is_dir() and not (local / MODEL_FILE).exists():
        newest = latest_checkpoint_dir(local)  # a Ray Train run directory
        if newest:
            _say(f"eval: {checkpoint} is a run directory; using its newest checkpoint {newest}", progress)
            checkpoint = newest
    model, ckpt_cfg = load_checkpoint(checkpoint)
    cfg = cfg or ckpt_cfg
    if overrides:
        if not isinstance(overrides, dict):
            overrides = dict(parse_override(o) for o in overrides)
        fixed = [k for k in overrides if k.startswith("model.")]
        if fixed:
            raise ValueError(f"--set {fixed[0]}: the checkpoint's weights fix the model; model.* cannot change")
        cfg = apply_overrides(cfg, overrides)
    model.eval()
    if baselines is None:
        baselines = cfg.eval.baselines
    return evaluate_model(model, cfg, store or cfg.data.store, out_dir, baselines, progress)
