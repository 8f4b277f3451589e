"""Transfer evaluation: a model's frozen video embeddings on a public set it never saw (ACDC).

    eval:
      transfer: {acdc: store_acdc}        # set name -> clip store (`cmr-ray prepare --format acdc`)
      # transfer: {acdc: synthetic}       # the synthetic ACDC-layout stand-in, built once

    from cmr_ray.eval.transfer import ensure_transfer_stores, evaluate_transfer
    stores = ensure_transfer_stores(cfg)                        # {"acdc": "/abs/store"}
    metrics, extras, notes = evaluate_transfer(model, cfg)      # metrics["transfer/acdc/probe/acdc_acc"]
    plot_transfer_tsne({"CMR-CLIP (ours)": extras["acdc"]["test"]}, "transfer_acdc_tsne.png", "acdc")

For each set the model (trained, zero-shot or SimCLR: whatever is passed) embeds the set's
studies with the clip assembly of training (`cmr_ray.eval.embed.embed_split`) restricted to
the cine short axis: `data.views` = `cine:sax` (`VIEWS`) at the row's own `data.frames`.  The
5-class probe of Table 5 (`cmr_ray.eval.probe`, StandardScaler + balanced logistic
regression, C by CV on the fitting studies only) is fitted on the set's train + val studies
and scored on its test studies (ACDC: `training/` and `testing/`).  Studies without a group
(`label_acdc` null) are embedded, drawn grey in the t-SNE picture, left out of the probe and
counted in a note.  Keys: `transfer/<set>/probe/acdc_acc|_auc|_f1`, their 95% bootstrap
intervals `..._lo|_hi` (`cmr_ray.eval.bootstrap.probe_intervals` over the scored test
studies, `eval.bootstrap` resamples), and `transfer/<set>/n_fit|n_test` (labelled studies).
`cmr_ray.eval.evaluation.evaluate_method` calls `evaluate_transfer` for every method, so a
trial, `cmr-ray eval` and the sweep's baselines all get the keys (the baselines with no
prefix, as a trial; `cmr-ray eval` prefixes its baselines with `baseline/<name>/`).  The
evaluation writes `transfer.md` (the table) and `transfer_<set>_tsne.png` (one panel per
method) beside its other tables and plots (`write_transfer_outputs`).

`synthetic` instead of a path is the offline stand-in: `ensure_transfer_stores` writes
`SYNTH_STUDIES` patients of the synthetic cohort in ACDC's layout (`cmr_ray.synth.acdc`) with
seed `data.synth_seed + SYNTH_SEED_OFFSET` (hearts the training cohort does not have; the
same seed would give the training cohort's own hearts) and the cohort's `data.synth_protocol`,
and prepares them (`cmr_ray.data.acdc.prepare_nifti`, at `data.image_size`) into
`<data.store>-transfer-<set>/store`, once: a complete store there is reused, and a file lock
keeps two trials from building it at the same time.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import numpy as np

from cmr_ray.config import Config
from cmr_ray.data.ensure import beside_store, existing_store_info

VIEWS = "cine:sax"
TASK = "acdc"
METRICS = ("acc", "auc", "f1")
FIT_SPLITS = ("train", "val")
SYNTHETIC = "synthetic"
SYNTH_STUDIES = 150          # ACDC's 100 training + 50 testing patients
SYNTH_SEED_OFFSET = 7919     # the stand-in's cohort seed is data.synth_seed + this
NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _say(msg: str, progress: bool = True) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def config_problem(value) -> str | None:
    """What `eval.transfer` should have been, or None when `value` is fine (config.py's check)."""
    if not isinstance(value, dict):
        return "a mapping of set name -> clip store path or 'synthetic' (e.g. {acdc: store_acdc})"
    for name, store in value.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            return "set names of letters, digits, '_' and '-' (they become metric keys transfer/<name>/...)"
        if not isinstance(store, str) or not store.strip():
            return f"a clip store path or 'synthetic' for set '{name}'"
    return None


def transfer_sets(cfg: Config) -> dict:
    """`eval.transfer` as given ({} when unset)."""
    return dict(cfg.eval.transfer)


def absolute_stores(sets: dict | None) -> dict:
    """`eval.transfer` with local store paths made absolute ('synthetic' and URIs as they are):
    Tune runs each trial in its own directory, so the sweep passes absolute paths."""
    return {name: store if store == SYNTHETIC or "://" in store else os.path.abspath(os.path.expanduser(store))
            for name, store in (sets or {}).items()}


def key(name: str, metric: str) -> str:
    return f"transfer/{name}/probe/{TASK}_{metric}"


def transfer_cfg(cfg: Config) -> Config:
    """`cfg` with the transfer set's views (cine SAX) at the same frame count."""
    return cfg.replace("data.views", VIEWS)


# ----------------------------------------------------------------- the stores

def synthetic_dir(cfg: Config, name: str) -> Path:
    """Where the synthetic stand-in of set `name` lives: beside the data store."""
    return beside_store(cfg, f"transfer-{name}")


def check_store(cfg: Config, name: str, store: str, info: dict | None = None) -> None:
    """One line (ValueError) when `store` is not a clip store of the config's frame size."""
    info = info if info is not None else existing_store_info(store)
    where = f"eval.transfer.{name}: {store}"
    if info is None:
        raise ValueError(f"{where} is not a clip store (no store.json; `cmr-ray prepare DIR --format acdc --out {store}`)")
    size, want = info.get("image_size"), cfg.data.image_size
    if size is not None and int(size) != want:
        raise ValueError(f"{where} holds {size} px clips but data.image_size is {want}; prepare it again with "
                         f"--image-size {want} (or delete it when it is the synthetic stand-in)")


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_synthetic(cfg: Config, name: str, num_cpus: int | None = None, progress: bool = True, echo=None) -> str:
    """The synthetic stand-in's store path, written and prepared first when it is not complete."""
    from cmr_ray.data.acdc import prepare_nifti
    from cmr_ray.synth.acdc import generate_acdc

    echo = echo or (lambda m: _say(m, progress))
    base = synthetic_dir(cfg, name)
    nifti, store = base / "acdc", str(base / "store")
    info = existing_store_info(store)
    if info is not None:
        check_store(cfg, name, store, info)
        return store
    data = cfg.data
    seed = data.synth_seed + SYNTH_SEED_OFFSET
    with _locked(base / ".lock"):
        info = existing_store_info(store)  # another process may have built it while this one waited
        if info is not None:
            check_store(cfg, name, store, info)
            return store
        echo(f"transfer set {name}: writing the synthetic ACDC-layout stand-in ({SYNTH_STUDIES} patients, "
             f"seed {seed}, protocol {data.synth_protocol}) into {nifti}")
        generate_acdc(nifti, studies=SYNTH_STUDIES, seed=seed, protocol=data.synth_protocol, workers=num_cpus,
                      progress=progress)
        echo(f"transfer set {name}: preparing the clip store {store} from {nifti}")
        summary = prepare_nifti(str(nifti), store, fmt="acdc", cfg=cfg, num_cpus=num_cpus, progress=progress)
        if not summary.ok:
            raise RuntimeError(f"eval.transfer.{name}: the synthetic stand-in gave no usable study ({store})")
        echo(summary.text.rsplit("\n", 1)[-1])
    return store


def ensure_transfer_stores(cfg: Config, num_cpus: int | None = None, progress: bool = True, echo=None) -> dict:
    """{set name: store path} for `eval.transfer`: a 'synthetic' entry is built once (beside
    the data store) and reused after; a local path is made absolute; every store is checked
    (exists, same frame size as data.image_size).  Raises ValueError in one line otherwise."""
    out = {}
    for name, store in absolute_stores(transfer_sets(cfg)).items():
        if store == SYNTHETIC:
            out[name] = build_synthetic(cfg, name, num_cpus, progress, echo)
            continue
        check_store(cfg, name, store)
        out[name] = store
    return out


def check_transfer_config(cfg: Config) -> None:
    """Before any embedding work: every named store (not 'synthetic') exists at the right size."""
    for name, store in absolute_stores(transfer_sets(cfg)).items():
        if store != SYNTHETIC:
            check_store(cfg, name, store)


# ----------------------------------------------------------------- the evaluation

def _embed(model, store: str, cfg: Config, splits, progress: bool):
    from cmr_ray.eval.embed import Embeddings, embed_split

    parts = [embed_split(model, store, cfg, s, progress=progress) for s in splits]
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Embeddings.concat(parts, "+".join(splits))


def evaluate_set(model, cfg: Config, name: str, store: str, progress: bool = True):
    """(metrics, extras, notes) of one transfer set; see the module docstring."""
    from cmr_ray.eval.probe import known, probe_tasks

    tcfg = transfer_cfg(cfg)
    seed = cfg.train.seed
    _say(f"eval: transfer set {name} ({store}), {VIEWS} at {cfg.data.frames} frames", progress)
    fit = _embed(model, store, tcfg, FIT_SPLITS, progress)
    test = _embed(model, store, tcfg, ("test",), progress)
    if fit is None or test is None:
        missing = " and ".join(w for w, e in (("train/val", fit), ("test", test)) if e is None)
        raise ValueError(f"eval.transfer.{name}: {store} has no {missing} studies with {VIEWS}")
    probe_m, outcomes, notes = probe_tasks(fit.video, fit.labels, test.video, test.labels, [TASK], seed=seed,
                                           fit_patients=fit.patient_keys, test_patients=test.patient_keys)
    metrics = {key(name, m): probe_m[f"{TASK}_{m}"] for m in METRICS}
    fi, _ = known(fit.labels, TASK)
    ti, _ = known(test.labels, TASK)
    metrics[f"transfer/{name}/n_fit"], metrics[f"transfer/{name}/n_test"] = float(len(fi)), float(len(ti))
    notes = [f"transfer {name}: {n}" for n in notes]
    unlabelled = (len(fit) - len(fi)) + (len(test) - len(ti))
    if unlabelled:
        notes.append(f"transfer {name}: {unlabelled} studies without a group (embedded, left out of the probe)")
    resamples = cfg.eval.bootstrap
    outcome = outcomes[TASK]
    if resamples and len(ti) and outcome.y_pred is not None:
        from cmr_ray.eval.bootstrap import draw_weights, probe_intervals

        iv, more = probe_intervals(outcome, draw_weights(len(ti), resamples, seed), seed)
        notes += [f"transfer {name}: {n}" for n in more]
        for m, (lo, hi) in iv.items():
            metrics[key(name, m) + "_lo"], metrics[key(name, m) + "_hi"] = lo, hi
    extras = {"test": test, "outcome": outcome, "n_fit": len(fit), "store": store, "seed": seed,
              "frames": cfg.data.frames, "plots": cfg.eval.plots}
    return metrics, extras, notes


def evaluate_transfer(model, cfg: Config, progress: bool = True):
    """(metrics, {set: extras}, notes) over every set of `eval.transfer` ({} when none)."""
    sets = transfer_sets(cfg)
    if not sets:
        return {}, {}, []
    stores = ensure_transfer_stores(cfg, num_cpus=1, progress=progress)
    metrics, extras, notes = {}, {}, []
    for name, store in stores.items():
        m, ex, nn = evaluate_set(model, cfg, name, store, progress)
        metrics.update(m)
        extras[name] = ex
        notes += nn
    return metrics, extras, notes


def embed_transfer_test(model, cfg: Config, progress: bool = True) -> dict:
    """{set: {"test": Embeddings}} of the test studies only (a t-SNE panel, no probe)."""
    tcfg = transfer_cfg(cfg)
    stores = ensure_transfer_stores(cfg, num_cpus=1, progress=progress)
    return {name: {"test": _embed(model, store, tcfg, ("test",), progress), "store": store,
                   "seed": cfg.train.seed, "frames": cfg.data.frames,
                   "plots": cfg.eval.plots} for name, store in stores.items()}


# ----------------------------------------------------------------- outputs

def plot_transfer_tsne(panels: dict, path, name: str, seed: int = 0, frames: int | None = None) -> str:
    """t-SNE of the set's test video embeddings, one panel per {method title: Embeddings},
    coloured by group (grey: no group), in the style of `cmr_ray.eval.plots.tsne_panels`."""
    from cmr_ray.eval import plots

    at = f", {frames} frames" if frames else ""
    return plots.tsne_panels({t: (e.video, e.labels[TASK]) for t, e in panels.items() if e is not None and len(e)},
                             path, seed=seed, title=f"t-SNE of {name} test video embeddings ({VIEWS}{at}; "
                                                    f"never seen in training)")


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def transfer_markdown(rows: dict) -> str:
    """Markdown of {method title: unprefixed metrics} for every set they hold."""
    sets = sorted({k.split("/")[1] for m in rows.values() for k in m if k.startswith("transfer/")})
    out = []
    for name in sets:
        lines = [f"### Transfer to {name}: 5-class linear probe on frozen {VIEWS} embeddings (fractions, 95% interval)",
                 "", "| Method | Fit studies | Test studies | Acc | AUC | F1 |", "|---|---|---|---|---|---|"]
        for title, m in rows.items():
            if key(name, "acc") not in m:
                continue
            cells = []
            for s in METRICS:
                k = key(name, s)
                lo, hi = m.get(k + "_lo"), m.get(k + "_hi")
                iv = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else ""
                cells.append(_fmt(m.get(k)) + iv)
            n_fit, n_test = m.get(f"transfer/{name}/n_fit"), m.get(f"transfer/{name}/n_test")
            count = lambda v: "n/a" if v is None else str(int(v))  # noqa: E731
            lines.append(f"| {title} | {count(n_fit)} | {count(n_test)} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def write_transfer_outputs(out, rows: dict) -> str:
    """`transfer.md` and `transfer_<set>_tsne.png` in `out` from {method title: (unprefixed
    metrics, {set: extras})}; returns the Markdown ('' when no method has a transfer set)."""
    out = Path(out)
    text = transfer_markdown({t: m for t, (m, _) in rows.items()})
    if not text:
        return ""
    (out / "transfer.md").write_text(text + "\n")
    sets = list(dict.fromkeys(n for _, ex in rows.values() for n in (ex or {})))
    for name in sets:
        panels = {t: ex[name]["test"] for t, (_, ex) in rows.items() if ex and name in ex}
        first = next(ex[name] for _, ex in rows.values() if ex and name in ex)
        if first.get("plots", True) and panels:
            plot_transfer_tsne(panels, out / f"transfer_{name}_tsne.png", name, first.get("seed", 0),
                               first.get("frames"))
    return text
