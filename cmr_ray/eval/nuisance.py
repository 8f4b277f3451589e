"""What an embedding encodes besides the report: linear read-outs of the synthetic cohort's draws.

    from cmr_ray.eval.nuisance import cohort_parameters, readouts
    params = cohort_parameters("cmr_store/synthetic-small", seed=0)   # study_key -> {"fov_mm": ..., ...}
    rows = readouts(fit_emb, test_emb, params)   # one Readout per parameter, fitted on fit, scored on test

The synthetic cohort draws every study from `cmr_ray.synth.patients.sample_patient(seed,
index)`.  Besides the pathology, which the impression states, that draw sets how the study
was acquired and who the patient is: field of view, noise, inversion time, vendor, field
strength, heart rate, body size, the heart's orientation.  No impression mentions them.  A
store prepared from the cohort keeps each file's path (`<index>/SE…/….dcm`) in its
manifest, so every stored study's draw can be made again, and a linear read-out on the
frozen embeddings says how much of each parameter the representation carries.  That is the
question the SimCLR baseline raises: it learns its pretext task, yet its diagnosis probe
gains little over the untrained tower on some draws.  A tower that encodes the scanner
better than the heart has learned what tells two studies apart, not what the report says.

Parameters (`PARAMETERS`): each is `kind` "nuisance" (never in the report) or "anatomy"
(what the findings are measured from), read out either as a number (ridge regression,
scored by R² on the test split; 0 is no better than the test mean) or as a class (the
platform's linear probe, scored by accuracy beside the majority-class rate of the test split).
"""
from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

# name -> (kind, "number" | "class")
PARAMETERS = {
    "fov_mm": ("nuisance", "number"),
    "noise": ("nuisance", "number"),
    "ti_ms": ("nuisance", "number"),
    "field_t": ("nuisance", "number"),
    "vendor": ("nuisance", "class"),
    "heart_rate": ("nuisance", "number"),
    "body_scale": ("nuisance", "number"),
    "fat_mm": ("nuisance", "number"),
    "inplane": ("nuisance", "number"),
    "yaw": ("nuisance", "number"),
    "pitch": ("nuisance", "number"),
    "lv_edd_mm": ("anatomy", "number"),
    "wall_mm": ("anatomy", "number"),
    "ef_target": ("anatomy", "number"),
    "rv_scale": ("anatomy", "number"),
    "pathology": ("anatomy", "class"),
    "acdc": ("anatomy", "class"),  # the pathology's ACDC class: what the 5-class probe predicts
    # mitral regurgitation grade, 0-3 (patients.MR_GRADES), shown only by cine long-axis views in
    # systole; read as a number: the probe's balanced accuracy sits below the 0.71 "none" majority
    "mr": ("anatomy", "number"),
}
_INDEX_DIR = re.compile(r"^(\d{5})/")  # generate_study writes dicom/<index:05d>/...


@dataclasses.dataclass(frozen=True)
class Readout:
    name: str
    kind: str  # nuisance | anatomy
    metric: str  # "R2" or "acc"
    score: float  # test R² or test accuracy
    chance: float  # 0 for R², the majority-class rate for accuracy
    n_test: int


def study_indices(store) -> dict[str, int]:
    """study_key -> the cohort index its files came from (the manifest's `<index>/` path prefix).
    Raises ValueError naming the store when no used file has such a path: not a synthetic cohort."""
    from cmr_ray.data import storefs
    from cmr_ray.data.manifest import read_rows

    fs, root = storefs.open_store(store)
    out: dict[str, int] = {}
    for r in read_rows(fs, storefs.join(root, "manifest.parquet")):
        key, m = r.get("study_key"), _INDEX_DIR.match(str(r.get("path") or ""))
        if not key or not m or r.get("status") != "used":
            continue
        idx = int(m.group(1))
        if out.setdefault(key, idx) != idx:
            raise ValueError(f"{store}: study {key} has files under two cohort indices ({out[key]} and {idx})")
    if not out:
        raise ValueError(f"{store}: manifest.parquet has no used file under a <index>/ directory; "
                         "this store was not prepared from a synthetic cohort")
    return out


def patient_parameters(patient) -> dict:
    """The `PARAMETERS` of one `sample_patient` draw."""
    from cmr_ray.synth.patients import LABELS

    derived = {"acdc": LABELS[patient.pathology][4]}
    return {name: derived[name] if name in derived else getattr(patient, name) for name in PARAMETERS}


def cohort_parameters(store, seed: int, site: str = "internal") -> dict[str, dict]:
    """study_key -> `patient_parameters` of the draw behind it, for every stored study of a
    synthetic cohort of `seed` (`data.synth_seed`)."""
    from cmr_ray.synth.patients import sample_patient

    return {key: patient_parameters(sample_patient(seed, idx, site=site)) for key, idx in study_indices(store).items()}


def check_labels(params: dict[str, dict], study_keys, acdc) -> None:
    """Raise ValueError unless every study's stored ACDC label is its draw's: a wrong cohort seed
    would otherwise give read-outs of parameters that belong to other patients."""
    missing = [k for k in study_keys if k not in params]
    if missing:
        raise ValueError(f"{len(missing)} studies have no cohort index in the manifest (e.g. {missing[0]})")
    wrong = [k for k, a in zip(study_keys, acdc) if a is not None and params[k]["acdc"] != a]
    if wrong:
        raise ValueError(f"{len(wrong)} of {len(acdc)} studies' ACDC labels differ from their draw's "
                         f"(e.g. {wrong[0]}): is data.synth_seed the seed this store's cohort was made with?")


def read_number(x_fit, y_fit, x_test, y_test) -> float:
    """Test R² of a ridge regression on standardised features (the probe's StandardScaler;
    penalty chosen by leave-one-out on the fit split)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(np.asarray(x_fit, np.float64), np.asarray(y_fit, np.float64))
    return float(model.score(np.asarray(x_test, np.float64), np.asarray(y_test, np.float64)))


def read_class(x_fit, y_fit, x_test, y_test, seed: int = 0) -> tuple[float, float]:
    """(test accuracy of the platform's linear probe, `cmr_ray.eval.probe.fit_probe`: balanced
    logistic regression, C by cross-validation on the fit split; the test split's majority-class rate)."""
    from cmr_ray.eval.probe import fit_probe

    y_fit, y_test = np.asarray(y_fit), np.asarray(y_test)
    model = fit_probe(np.asarray(x_fit, np.float64), y_fit, seed=seed)
    _, counts = np.unique(y_test, return_counts=True)
    return float((model.predict(np.asarray(x_test, np.float64)) == y_test).mean()), float(counts.max() / len(y_test))


def readouts(fit, test, params: dict[str, dict], names=None) -> list[Readout]:
    """One `Readout` per parameter: fitted on `fit`'s video embeddings, scored on `test`'s
    (`cmr_ray.eval.embed.Embeddings`, or anything with `.video` and `.study_keys`)."""
    out = []
    for name in names or PARAMETERS:
        kind, how = PARAMETERS[name]
        y_fit = [params[k][name] for k in fit.study_keys]
        y_test = [params[k][name] for k in test.study_keys]
        if how == "number":
            score, chance, metric = read_number(fit.video, y_fit, test.video, y_test), 0.0, "R2"
        else:
            (score, chance), metric = read_class(fit.video, y_fit, test.video, y_test), "acc"
        out.append(Readout(name, kind, metric, score, chance, len(y_test)))
    return out


# The read-outs `cmr-ray report` tabulates (every one in PARAMETERS is logged): the scanner
# and body parameters that a tower was found to carry, and the anatomy the findings rest on.
REPORTED = {"fov_mm": "field of view", "body_scale": "body size", "fat_mm": "fat", "lv_edd_mm": "LV diameter",
            "wall_mm": "wall", "ef_target": "EF", "rv_scale": "RV size", "acdc": "ACDC class (acc)",
            "mr": "MR grade"}
PREFIX = "readout/"


def readout_metrics(store, seed: int, fit, test) -> tuple[dict, list[str]]:
    """`readouts` as metrics, `readout/<name>` (R² or accuracy) and `readout/<name>_majority`
    for a class, for the evaluation of one tower on a synthetic cohort's store.  A store that
    is not that cohort's (no `<index>/` paths, or labels that are not the draws of `seed`)
    gives no metrics and one note saying why; the evaluation goes on."""
    try:
        params = _cached_parameters(str(store), int(seed))
        for emb in (fit, test):
            check_labels(params, emb.study_keys, emb.labels["acdc"])
    except ValueError as e:
        where = "" if str(store) in str(e) else f"{store}: "
        return {}, [f"read-outs of the cohort's draws left out: {where}{e}"]
    out = {}
    for r in readouts(fit, test, params):
        out[PREFIX + r.name] = r.score
        if r.metric == "acc":
            out[f"{PREFIX}{r.name}_majority"] = r.chance
    return out, []


@functools.lru_cache(maxsize=1)
def _cached_parameters(store: str, seed: int) -> dict:
    """`cohort_parameters` of the last (store, seed) a process asked for: `cmr-ray eval`
    evaluates the model and its baselines on one store, and a Ray worker may run several."""
    return cohort_parameters(store, seed)
