"""External-cohort evaluation: every metric again on another site's store, nothing fitted there.

    eval:
      external: store_site_b          # a clip store of another site (`cmr-ray prepare`), or
      # external: synthetic           # the synthetic other-site cohort, built once beside data.store

    from cmr_ray.eval.external import ensure_external_store, evaluate_external
    store = ensure_external_store(cfg)                           # "/abs/cmr_store/synthetic-small-external/store"
    metrics, extras, notes = evaluate_external(model, cfg, fit, outcomes, tasks, encode_text=model.encode_text)
    metrics["external/test/rsum"], metrics["external/probe/nicm_auc"]

The model embeds every study of the external store (all its splits: nothing is fitted on
it, so none is held back) with the trial's own clip assembly (`data.views`, `data.frames`),
and is scored there with what the internal evaluation fitted on the internal train + val
split (`fit`): retrieval (`external/test/<metric>`); the linear probes fitted there
(`outcomes` of `cmr_ray.eval.probe.probe_tasks`, applied by `probe.apply_probes`:
`external/probe/<task>_<metric>`); the prompt thresholds chosen on `fit`
(`external/zeroshot_prompt/<task>_<metric>`, when `encode_text` is given: the trained model,
as internally); and the prototype episodes drawn from `fit` with `eval.prototype_seed`
(`external/fewshot_proto/<task>_<metric>_k<n>[_std]`).  Tasks are the internal evaluation's,
less any the external store has no label for.  With `eval.bootstrap` resamples, `_lo`/`_hi`
for every `external/test/` and `external/probe/` key (`cmr_ray.eval.bootstrap`), and
`external/n_studies`.  The external labels reach only the scoring functions.

RSUM at equal gallery sizes (`equal_gallery_metrics`): Recall@K, so RSUM, depends on how many
studies the gallery holds (`retrieval.chance_rsum`: 64.4 at 202 studies, 86.7 at 150), so
`test/rsum` and `external/test/rsum` are not comparable when the sets differ in size.  The
larger set is scored again at the smaller one's size, as the mean over `EQUAL_GALLERY_SUBSETS`
random subsets of it (seeded by `train.seed`, each ranked within itself;
`retrieval.subset_retrieval_metrics`): `test/rsum_at_external_n` (the internal test split at
the external cohort's size; the usual case) or `external/test/rsum_at_internal_n` (the
external cohort at the internal test split's size, when it is the larger), each with
`..._std` over the subsets, beside `test/n_studies` (the internal test split's studies).  The
drop internal -> external is read at that one size (`drop_markdown`, and the report's
`cmr_ray.tune.report_external.drop_table`).

`synthetic` is the offline stand-in: `ensure_external_store` writes `eval.external_studies`
studies of the synthetic cohort of the other site (`cmr_ray.synth.generate_cohort(...,
site="external")`: its own vendors, field strength, matrix, noise, pathology mix and report
style; the same findings code) with seed `data.synth_seed + SYNTH_SEED_OFFSET` and the
cohort's `data.synth_protocol` into `<data.store>-external/cohort`, and prepares it
(`cmr_ray.data.prepare.prepare`, with the config's image size and splits) into
`<data.store>-external/store`, once: a complete store there is reused (after checking it is
of the same cohort and frame size), and a file lock keeps two trials from building it at
the same time.  The sweep builds it before its trials, as it builds `eval.transfer`'s.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from cmr_ray.config import Config
from cmr_ray.data.ensure import beside_store, existing_store_info

PREFIX = "external/"
SYNTHETIC = "synthetic"
SPLITS = ("train", "val", "test")  # every external study is scored
SYNTH_SEED_OFFSET = 104729  # the stand-in's seed is data.synth_seed + this (not the training cohort's hearts)
EQUAL_GALLERY_SUBSETS = 100  # random subsets averaged for RSUM at the smaller set's size
INTERNAL_AT_EXTERNAL_N = "test/rsum_at_external_n"  # the internal test split at the external cohort's size
EXTERNAL_AT_INTERNAL_N = PREFIX + "test/rsum_at_internal_n"  # the external cohort at the internal test split's size


def _say(msg: str, progress: bool = True) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def config_problem(value) -> str | None:
    """What `eval.external` should have been, or None when `value` is fine (config.py's check)."""
    if not isinstance(value, str) or value != value.strip():
        return "a clip store path, 'synthetic' or '' (none)"
    return None


def external_store(cfg: Config) -> str:
    """`eval.external` with a local path made absolute ('' when unset; 'synthetic' and URIs as they are)."""
    v = cfg.eval.external
    return v if v in ("", SYNTHETIC) or "://" in v else os.path.abspath(os.path.expanduser(v))


def external_dir(cfg: Config) -> Path:
    """Where the synthetic external cohort and its store live: beside the data store."""
    return beside_store(cfg, "external")


def check_store(cfg: Config, store: str, info: dict | None = None) -> None:
    """One line (ValueError) when `store` is not a clip store of the config's frame size."""
    info = info if info is not None else existing_store_info(store)
    if info is None:
        raise ValueError(f"eval.external: {store} is not a clip store (no store.json; "
                         f"`cmr-ray prepare DICOM_DIR --reports REPORTS --out {store}`)")
    size, want = info.get("image_size"), cfg.data.image_size
    if size is not None and int(size) != want:
        raise ValueError(f"eval.external: {store} holds {size} px clips but data.image_size is {want}; prepare it "
                         "again at that size (or delete it when it is the synthetic stand-in)")


def synthetic_cohort(cfg: Config) -> dict:
    """The stand-in's generate_cohort arguments for `cfg`."""
    data = cfg.data
    return {"studies": cfg.eval.external_studies, "seed": data.synth_seed + SYNTH_SEED_OFFSET,
            "protocol": data.synth_protocol, "site": "external"}


def check_cohort(cfg: Config, base: Path) -> None:
    """One line (ValueError) when the stand-in beside the store was made for other settings."""
    marker = base / "cohort" / "cohort.json"
    if not marker.exists():
        return
    from cmr_ray.synth.cohort import read_marker

    have, want = read_marker(marker), synthetic_cohort(cfg)
    bad = [k for k in want if have.get(k, "internal" if k == "site" else None) != want[k]]
    if bad:
        raise ValueError(f"eval.external: the synthetic cohort in {base} has "
                         f"{', '.join(f'{k} {have.get(k)}' for k in bad)} but the config asks for "
                         f"{', '.join(f'{k} {want[k]}' for k in bad)} (eval.external_studies, data.synth_*); delete {base}")


def build_synthetic(cfg: Config, address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                    echo=None) -> str:
    """The synthetic external store's path, generated and prepared first when not complete."""
    from cmr_ray.eval.transfer import _locked

    echo = echo or (lambda m: _say(m, progress))
    base = external_dir(cfg)
    store = str(base / "store")
    check_cohort(cfg, base)
    info = existing_store_info(store)
    if info is not None:
        check_store(cfg, store, info)
        return store
    with _locked(base / ".lock"):
        info = existing_store_info(store)  # another process may have built it while this one waited
        if info is not None:
            check_store(cfg, store, info)
            return store
        from cmr_ray.data.prepare import prepare
        from cmr_ray.synth import generate_cohort

        want, cohort = synthetic_cohort(cfg), base / "cohort"
        echo(f"external cohort: writing {want['studies']} studies of the synthetic other site (seed {want['seed']}, "
             f"protocol {want['protocol']}) into {cohort}")
        generate_cohort(str(cohort), want["studies"], want["seed"], protocol=want["protocol"], workers=num_cpus,
                        progress=progress, site="external")
        echo(f"external cohort: preparing the clip store {store}")
        summary = prepare(str(cohort / "dicom"), str(cohort / "reports.csv"), store, labels=str(cohort / "labels.csv"),
                          cfg=cfg, address=address, num_cpus=num_cpus, progress=progress)
        if not summary.ok:
            raise RuntimeError(f"eval.external: the synthetic external cohort gave no usable study ({store})")
        echo(summary.text.rsplit("\n", 1)[-1])
    return store


def ensure_external_store(cfg: Config, address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                          echo=None) -> str | None:
    """The external store's path (None when `eval.external` is unset): 'synthetic' is built once
    beside the data store and reused; a named store is checked (exists, same frame size)."""
    store = external_store(cfg)
    if not store:
        return None
    if store == SYNTHETIC:
        return build_synthetic(cfg, address, num_cpus, progress, echo)
    check_store(cfg, store)
    return store


def check_external_config(cfg: Config) -> None:
    """Before any embedding work: a named store (not 'synthetic') exists at the right size."""
    store = external_store(cfg)
    if store and store != SYNTHETIC:
        check_store(cfg, store)


# ----------------------------------------------------------------- the evaluation

def embed_external(model, cfg: Config, store: str, progress: bool = True):
    """Embeddings of every study of `store` (all splits), with the trial's views and frames."""
    from cmr_ray.eval.embed import Embeddings, embed_split

    parts = [e for e in (embed_split(model, store, cfg, s, progress=progress) for s in SPLITS) if len(e)]
    if not parts:
        raise ValueError(f"eval.external: {store} has no study with {cfg.data.views}")
    return parts[0] if len(parts) == 1 else Embeddings.concat(parts, "+".join(SPLITS))


def score_external(cfg: Config, fit, outcomes: dict, tasks, ext, encode_text=None, temperature: float = 0.05):
    """(metrics with the `external/` prefix, extras, notes) of the external embeddings `ext`,
    scored with what was fitted on `fit` (probe `outcomes`, prompt thresholds, prototypes)."""
    from cmr_ray.eval.probe import apply_probes, has_labels
    from cmr_ray.eval.retrieval import metrics_from_ranks, retrieval_ranks_from_embeddings

    ev, seed = cfg.eval, cfg.train.seed
    ranks = retrieval_ranks_from_embeddings(ext.text, ext.video, ev.chunk_size)
    metrics = {f"test/{k}": v for k, v in metrics_from_ranks(*ranks).items()}
    metrics["n_studies"] = float(len(ext))
    missing = [t for t in tasks if not has_labels(ext.labels, t)]
    tasks = [t for t in tasks if t not in missing and t in outcomes]
    notes = [f"{t}: the external store has no label for it; not scored" for t in missing]
    probe_m, scored, more = apply_probes(outcomes, ext.video, ext.labels, tasks)
    metrics.update({f"probe/{k}": v for k, v in probe_m.items()})
    notes += more
    if encode_text is not None:
        from cmr_ray.eval.zeroshot import zero_shot_prompts

        zs_m, more = zero_shot_prompts(encode_text, fit.video, fit.labels, ext.video, ext.labels, tasks,
                                       temperature=temperature)
        metrics.update({f"zeroshot_prompt/{k}": v for k, v in zs_m.items()})
        notes += more
    if ev.prototype_shots:
        from cmr_ray.eval.prototypes import prototype_few_shot

        proto_m, more = prototype_few_shot(fit.video, fit.labels, ext.video, ext.labels, tasks, ev.prototype_shots,
                                           ev.prototype_episodes, ev.prototype_seed)
        metrics.update({f"fewshot_proto/{k}": v for k, v in proto_m.items()})
        notes += more
    if ev.bootstrap:
        from cmr_ray.eval.bootstrap import interval_metrics

        iv, more = interval_metrics(ranks, {t: o for t, o in scored.items() if o.y_pred is not None}, ext.labels,
                                    ev.bootstrap, seed)
        metrics.update(iv)
        notes += more
    metrics = {PREFIX + k: v for k, v in metrics.items()}
    return metrics, {"test": ext, "ranks": ranks, "outcomes": scored}, [f"external: {n}" for n in dict.fromkeys(notes)]


def equal_gallery_metrics(cfg: Config, internal, ext) -> dict:
    """RSUM of the larger of the internal test embeddings `internal` and the external ones
    `ext` at the smaller one's size (see the module docstring), and `test/n_studies`."""
    from cmr_ray.eval.retrieval import subset_retrieval_metrics

    n_int, n_ext = len(internal), len(ext)
    out = {"test/n_studies": float(n_int)}
    if n_int == 0 or n_ext == 0:
        return out
    if n_ext <= n_int:  # the usual case: the internal test split at the external cohort's size
        big, size, key = internal, n_ext, INTERNAL_AT_EXTERNAL_N
    else:
        big, size, key = ext, n_int, EXTERNAL_AT_INTERNAL_N
    m = subset_retrieval_metrics(big.text, big.video, size, EQUAL_GALLERY_SUBSETS, cfg.train.seed, cfg.eval.chunk_size)
    out[key], out[key + "_std"] = m["rsum"], m["rsum_std"]
    return out


def equal_gallery_rsum(metrics: dict) -> tuple[float, float, int] | None:
    """(internal RSUM, external RSUM, gallery size) at one gallery size from one method's
    unprefixed metrics, or None when they lack the counts or the equal-gallery key."""
    n_int, n_ext = metrics.get("test/n_studies"), metrics.get(PREFIX + "n_studies")
    if n_int is None or n_ext is None or not (np.isfinite(n_int) and np.isfinite(n_ext)):
        return None
    if n_ext <= n_int:
        a, b = metrics.get(INTERNAL_AT_EXTERNAL_N), metrics.get(PREFIX + "test/rsum")
    else:
        a, b = metrics.get("test/rsum"), metrics.get(EXTERNAL_AT_INTERNAL_N)
    if a is None or b is None:
        return None
    return float(a), float(b), int(min(n_int, n_ext))


def evaluate_external(model, cfg: Config, fit, outcomes: dict, tasks, encode_text=None, temperature: float = 0.05,
                      progress: bool = True):
    """(metrics, extras, notes) on `eval.external` ({}, {}, [] when unset); see the module docstring."""
    store = ensure_external_store(cfg, num_cpus=1, progress=progress)
    if store is None:
        return {}, {}, []
    _say(f"eval: external cohort {store}, {cfg.data.views} at {cfg.data.frames} frames", progress)
    ext = embed_external(model, cfg, store, progress)
    metrics, extras, notes = score_external(cfg, fit, outcomes, tasks, ext, encode_text, temperature)
    extras["store"] = store
    return metrics, extras, notes


def drop_markdown(metrics: dict) -> str:
    """Internal -> external for the main metrics of one method's unprefixed metrics ('' when none).
    RSUM's drop is read at one gallery size (`equal_gallery_rsum`); the whole sets' RSUMs
    are listed without a drop, each with its chance RSUM."""
    from cmr_ray.eval.retrieval import chance_rsum

    fmt = lambda v: "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    rows = []
    a, b = metrics.get("test/rsum"), metrics.get(PREFIX + "test/rsum")
    if a is not None and b is not None:
        equal = equal_gallery_rsum(metrics)
        if equal is not None:
            ea, eb, n = equal
            rows.append(f"| test/rsum at equal gallery (n = {n}; chance {chance_rsum(n):.1f}) | {fmt(ea)} | {fmt(eb)} "
                        f"| {fmt(ea - eb)} |")
        n_int, n_ext = metrics.get("test/n_studies"), metrics.get(PREFIX + "n_studies")
        counted = all(v is not None and np.isfinite(v) and v >= 1 for v in (n_int, n_ext))
        chance = (f" (n = {int(n_int)} → {int(n_ext)}; chance {chance_rsum(n_int):.1f} → {chance_rsum(n_ext):.1f})"
                  if counted else "")
        rows.append(f"| test/rsum, whole sets{chance} | {fmt(a)} | {fmt(b)} | not comparable |")
    for k in ("probe/acdc_acc", "probe/nicm_auc", "probe/icm_auc", "probe/amyl_auc", "probe/hcm_auc"):
        a, b = metrics.get(k), metrics.get(PREFIX + k)
        if a is not None and b is not None:
            rows.append(f"| {k} | {fmt(a)} | {fmt(b)} | {fmt(a - b)} |")
    if not rows:
        return ""
    lines = ["### Internal test split vs external cohort (nothing fitted on the external cohort)", "",
             "| Metric | Internal | External | Drop |", "|---|---|---|---|", *rows, "",
             "RSUM depends on the gallery size (chance RSUM = 2 x 100 (5 + 10 + 50) / n): its drop is read at "
             "the smaller set's size, the larger set averaged over "
             f"{EQUAL_GALLERY_SUBSETS} random subsets of that size."]
    return "\n".join(lines)
