"""Linear and few-shot probes on frozen video embeddings (scikit-learn logistic regression).

    from cmr_ray.eval.probe import probe_tasks, few_shot_probes
    metrics, outcomes, notes = probe_tasks(x_fit, labels_fit, x_test, labels_test, ["hcm", "acdc"])
    metrics["hcm_auc"], metrics["acdc_f1"]

Tasks: the binary labels `nicm`, `icm`, `amyl`, `hcm` (Acc, AUC, F1 of the positive class,
the paper's Table 5), the 5-class `acdc` label (Acc, macro one-vs-rest AUC, macro F1) and
the binary findings (`cmr_ray.data.schema.FINDINGS`: `lv_dilation`, ..., scored as the
binary labels are).  `tasks_with_findings(tasks, fit_labels, test_labels)` adds every
finding both splits carry, so an evaluation probes whichever findings a store has (none:
the tasks as given).
The probe is StandardScaler + LogisticRegression with class_weight='balanced' (classes are
imbalanced in every cohort; each class weighs the same in the loss).  C is chosen from
`CS` by stratified k-fold cross-validation (log-loss) on the fitting split only — the
caller passes train (+ val) studies; test studies reach only `predict`.  Splits are
patient-level: `check_disjoint` refuses a test patient that is also in the fitting split.
A fitting set with fewer than 2 examples of some class (1-shot) uses C = 1 without CV.

Unknown labels (null) are left out per task.  A task whose fitting split lacks a class
gets NaN metrics and a note saying why; a class present in test but absent from training
makes the AUC NaN (accuracy and F1 are still computed: that class is never predicted).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from cmr_ray.data.schema import ACDC_CLASSES, BINARY_LABELS, FINDINGS

CS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
CV_FOLDS = 5
METRICS = ("acc", "auc", "f1")
TASKS = BINARY_LABELS + ("acdc",) + FINDINGS
NAN = float("nan")


@dataclasses.dataclass
class ProbeOutcome:
    task: str
    metrics: dict  # acc, auc, f1
    notes: list
    classes: list = dataclasses.field(default_factory=list)
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    score: np.ndarray | None = None  # P(positive) for binary, [n, classes] for multi-class
    C: float | None = None
    model: object = None  # the fitted probe (scikit-learn Pipeline): `apply_probe` scores another set with it


def single_thread():
    """BLAS/OpenMP limited to one thread: these fits are small, and on a busy machine the
    thread pools' spin-waiting made them 10-30x slower (measured on the 2-core dev box)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"eval.probes: unknown probe {task!r} (known: {', '.join(TASKS)})")


def known(labels: dict, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices with a known label, those labels): int 0/1 for binary tasks, str for acdc."""
    check_task(task)
    y = np.asarray(labels[task])
    if task == "acdc":
        idx = np.array([i for i, v in enumerate(y) if v is not None and v == v], dtype=np.int64)
        return idx, np.array([str(y[i]) for i in idx], dtype=object)
    yf = y.astype(np.float64)
    idx = np.flatnonzero(~np.isnan(yf))
    return idx, yf[idx].astype(np.int64)


def has_labels(labels: dict, task: str) -> bool:
    """Whether any study of `labels` (an Embeddings.labels dict) has a known `task` label."""
    return task in labels and len(known(labels, task)[0]) > 0


def tasks_with_findings(tasks, *label_sets) -> list[str]:
    """`tasks`, then every finding that each of `label_sets` (the fitting and the test split's
    labels) carries for at least one study and `tasks` does not already name."""
    tasks = list(tasks)
    return tasks + [f for f in FINDINGS if f not in tasks and label_sets and all(has_labels(ls, f) for ls in label_sets)]


def check_disjoint(fit_patients, test_patients) -> None:
    both = set(fit_patients) & set(test_patients)
    if both:
        raise ValueError(f"probe: {len(both)} patient(s) are in both the fitting and the test split "
                         "(splits must be patient-level)")


def make_probe(C: float = 1.0, seed: int = 0, cv=None):
    """StandardScaler + logistic regression (balanced class weights); with `cv`, C by CV."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if cv is None:
        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed)
    else:
        lr = LogisticRegressionCV(Cs=list(CS), l1_ratios=(0.0,), cv=cv, scoring="neg_log_loss",
                                  class_weight="balanced", max_iter=3000, random_state=seed,
                                  use_legacy_attributes=False)
    return Pipeline([("scale", StandardScaler()), ("lr", lr)])


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """Fit the probe on (x, y) only; C by stratified k-fold CV (log-loss) over `CS` when every
    class has >= 2 examples, else C = 1."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    folds = min(CV_FOLDS, int(counts.min()))
    if folds < 2:
        return make_probe(1.0, seed).fit(x, y)
    return make_probe(seed=seed, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)).fit(x, y)


def score_predictions(task: str, y_true, y_pred, score, classes) -> tuple[dict, list]:
    """Acc, AUC, F1 with scikit-learn's own functions; NaN plus a note where undefined."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    notes = []
    m = {"acc": float(accuracy_score(y_true, y_pred))}
    present = sorted(set(y_true.tolist()))
    if task != "acdc":
        m["f1"] = float(f1_score(y_true, y_pred, pos_label=1, zero_division=np.nan))
        if math.isnan(m["f1"]):
            notes.append(f"{task}: F1 undefined, no positive study in test and none predicted")
        if len(present) < 2:
            m["auc"] = NAN
            notes.append(f"{task}: AUC undefined, the test split has only class {present[0]}")
        else:
            m["auc"] = float(roc_auc_score(y_true, score))
        return m, notes
    m["f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=np.nan))  # undefined classes left out
    missing = [c for c in present if c not in classes]
    if missing:
        m["auc"] = NAN
        notes.append(f"acdc: AUC undefined, test class(es) {missing} are absent from the fitting split")
    elif len(present) < 2:
        m["auc"] = NAN
        notes.append(f"acdc: AUC undefined, the test split has only class {present[0]}")
    elif present == sorted(classes):
        order = sorted(range(len(classes)), key=lambda j: classes[j])  # sklearn wants sorted labels
        m["auc"] = float(roc_auc_score(y_true, score[:, order], multi_class="ovr", average="macro",
                                       labels=[classes[j] for j in order]))
    else:  # macro one-vs-rest over the classes the test split has
        m["auc"] = float(np.mean([roc_auc_score(y_true == c, score[:, list(classes).index(c)]) for c in present]))
        notes.append(f"acdc: macro AUC over the test split's classes {present} only")
    return m, notes


def run_probe(task, x_fit, y_fit, x_test, y_test, seed: int = 0, fit_fn=fit_probe) -> ProbeOutcome:
    """Fit on (x_fit, y_fit), score on the test rows; y_* are already known labels."""
    check_task(task)
    classes = sorted(set(y_fit.tolist()))
    needed = list(ACDC_CLASSES) if task == "acdc" else [0, 1]
    if len(y_test) == 0:
        return ProbeOutcome(task, dict.fromkeys(METRICS, NAN), [f"{task}: no test study has this label"])
    if len(classes) < 2:
        have = classes[0] if classes else "none"
        return ProbeOutcome(task, dict.fromkeys(METRICS, NAN),
                            [f"{task}: the fitting split has a single class ({have}); cannot fit a probe"])
    notes = []
    absent = [c for c in needed if c not in classes]
    if absent:
        notes.append(f"{task}: class(es) {absent} absent from the fitting split")
    with single_thread():
        model = fit_fn(x_fit, y_fit, seed=seed)
        y_pred = model.predict(x_test)
        proba = model.predict_proba(x_test)
    fitted = list(model.classes_)
    score = proba[:, fitted.index(1)] if task != "acdc" else proba
    m, more = score_predictions(task, y_test, y_pred, score, fitted)
    lr = getattr(model, "named_steps", {}).get("lr")
    C = getattr(lr, "C_", getattr(lr, "C", None))
    return ProbeOutcome(task, m, notes + more, fitted, y_test, y_pred, score, C, model)


def apply_probe(fitted: ProbeOutcome, x, y) -> ProbeOutcome:
    """Score the probe `fitted` (a `run_probe` outcome: fitted on its own fitting split) on
    another set's known rows (x, y), an external cohort's: nothing is fitted here."""
    task = fitted.task
    if len(y) == 0:
        return ProbeOutcome(task, dict.fromkeys(METRICS, NAN), [f"{task}: no study of this set has this label"])
    if fitted.model is None:
        return ProbeOutcome(task, dict.fromkeys(METRICS, NAN), [f"{task}: no probe was fitted ({'; '.join(fitted.notes)})"])
    with single_thread():
        y_pred = fitted.model.predict(x)
        proba = fitted.model.predict_proba(x)
    classes = list(fitted.model.classes_)
    score = proba[:, classes.index(1)] if task != "acdc" else proba
    m, notes = score_predictions(task, y, y_pred, score, classes)
    return ProbeOutcome(task, m, notes, classes, y, y_pred, score, fitted.C, fitted.model)


def apply_probes(outcomes: dict, x, labels: dict, tasks) -> tuple[dict, dict, list]:
    """`apply_probe` for each task of `outcomes` (from `probe_tasks` on the fitting split) on
    the studies (x, labels) of another set.  Returns (flat metrics, {task: ProbeOutcome}, notes)."""
    metrics, scored, notes = {}, {}, []
    for task in tasks:
        idx, y = known(labels, task)
        out = apply_probe(outcomes[task], x[idx], y)
        scored[task] = out
        notes += out.notes
        metrics.update({f"{task}_{k}": v for k, v in out.metrics.items()})
    return metrics, scored, notes


def probe_tasks(x_fit, labels_fit, x_test, labels_test, tasks, seed=0, fit_fn=fit_probe,
                fit_patients=None, test_patients=None):
    """Full-data probes. Returns (flat metrics 'hcm_auc' ..., {task: ProbeOutcome}, notes)."""
    if fit_patients is not None and test_patients is not None:
        check_disjoint(fit_patients, test_patients)
    metrics, outcomes, notes = {}, {}, []
    for task in tasks:
        fi, fy = known(labels_fit, task)
        ti, ty = known(labels_test, task)
        out = run_probe(task, x_fit[fi], fy, x_test[ti], ty, seed, fit_fn)
        outcomes[task] = out
        notes += out.notes
        metrics.update({f"{task}_{k}": v for k, v in out.metrics.items()})
    return metrics, outcomes, notes


class FewShotError(ValueError):
    pass


def few_shot_indices(y, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly `k` positions per class of `y` (drawn without replacement), sorted."""
    y = np.asarray(y)
    picks = []
    for c in sorted(set(y.tolist())):
        pool = np.flatnonzero(y == c)
        if len(pool) < k:
            raise FewShotError(f"class {c} has {len(pool)} training example(s), fewer than k={k}")
        picks.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(picks))


def few_shot_probes(x_fit, labels_fit, x_test, labels_test, tasks, sizes, seeds: int,
                    fit_fn=fit_probe, fit_patients=None, test_patients=None):
    """Probes fitted on k examples per class, metrics averaged over `seeds` draws.

    Returns ({'hcm_auc_k4': ..., ...}, notes).  Draws come from the fitting split only.
    """
    if fit_patients is not None and test_patients is not None:
        check_disjoint(fit_patients, test_patients)
    metrics, notes = {}, []
    for task in tasks:
        fi, fy = known(labels_fit, task)
        ti, ty = known(labels_test, task)
        for k in sizes:
            k = int(k)
            runs = []
            for seed in range(int(seeds)):
                try:
                    sel = few_shot_indices(fy, k, np.random.default_rng(seed))
                except FewShotError as e:
                    notes.append(f"{task} k={k}: {e}; left out")
                    break
                out = run_probe(task, x_fit[fi[sel]], fy[sel], x_test[ti], ty, seed, fit_fn)
                notes += [f"{n} (few-shot k={k})" for n in out.notes]
                runs.append(out.metrics)
            for name in METRICS:
                vals = [r[name] for r in runs if not math.isnan(r[name])]
                metrics[f"{task}_{name}_k{k}"] = float(np.mean(vals)) if vals else NAN
    return metrics, list(dict.fromkeys(notes))
