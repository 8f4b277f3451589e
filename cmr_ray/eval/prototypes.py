"""Few-shot classification by class prototypes over many sampled episodes (numpy only).

    from cmr_ray.eval.prototypes import prototype_few_shot
    metrics, notes = prototype_few_shot(x_fit, labels_fit, x_test, labels_test, ["hcm", "acdc"],
                                        shots=[1, 4, 16], episodes=1000, seed=0)
    metrics["hcm_auc_k4"], metrics["hcm_auc_k4_std"]

An episode draws `n` studies per class from the fitting (training) split, without
replacement; each class's prototype is the mean of their L2-normalised embeddings,
renormalised; a test study is given the class of the nearest prototype by cosine
similarity (Snell et al. 2017, prototypical networks, on frozen embeddings; the authors'
later code, Makiya11/CMRCLIP `comparison/`, reports it as mean ± std over 1,000 episodes).
Every episode is scored on the whole test split: accuracy, F1 (of the positive class for
a binary task, macro over the classes for the 5-class `acdc`) and AUC (binary: the
similarity to the positive prototype minus that to the negative one; `acdc`: macro one-
vs-rest AUC of each class's similarity, over the classes the test split has).  Metrics are
the mean and the sample standard deviation (n - 1) over the episodes: `<task>_<metric>_k<n>`
and `<task>_<metric>_k<n>_std`.

All episodes of one (task, n) are drawn and scored at once: the draws are one
[episodes, pool] argpartition per class, the prototypes one [episodes, classes, D] array, the
scores one [episodes, test, classes] product.  The draws depend only on `seed`, n, the
task's fitting labels and their order, so two models embedding the same studies see the
same episodes, and scoring another set (an external cohort) with the same seed uses the
very same prototypes.  A class with fewer than n fitting studies cannot fill an episode:
that (task, n) gets NaN and a note saying so; a task whose fitting split lacks a class (or
whose test split has no study) likewise.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from cmr_ray.eval.probe import METRICS, NAN, check_task, known

EPISODE_BATCH = 250  # episodes scored per block: bounds memory at [batch, test, classes]


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def draw_episodes(y, n: int, episodes: int, rng: np.random.Generator, classes) -> np.ndarray:
    """[episodes, classes, n] positions into `y`: n distinct studies of each class per episode.
    Raises ValueError (one line) when a class has fewer than n studies."""
    y = np.asarray(y)
    out = np.empty((episodes, len(classes), n), dtype=np.int64)
    for j, c in enumerate(classes):
        pool = np.flatnonzero(y == c)
        if len(pool) < n:
            raise ValueError(f"class {c} has {len(pool)} training example(s), fewer than n={n}")
        order = np.argpartition(rng.random((episodes, len(pool))), n - 1, axis=1)[:, :n]  # without replacement
        out[:, j] = pool[order]
    return out


def prototypes(x_fit: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """[episodes, classes, D]: the renormalised mean of each class's picked (normalised) embeddings."""
    return normalise(normalise(x_fit)[picks].mean(axis=2))


def _auc_rows(score: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row of `score` [E, T] against one label vector (ties count 1/2)."""
    pos = positive.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(score.shape[0], NAN)
    ranks = rankdata(score, axis=1)
    return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _f1(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """F1 per row of boolean [E, T] predictions for one class; NaN where undefined (0/0)."""
    tp = (pred & truth).sum(axis=1)
    denom = 2 * tp + (pred & ~truth).sum(axis=1) + (~pred & truth).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), NAN)


def score_episodes(protos: np.ndarray, x_test: np.ndarray, y_test, classes, binary: bool) -> dict[str, np.ndarray]:
    """{acc, auc, f1: [episodes]} of nearest-prototype predictions on (x_test, y_test); a test
    class that is not among `classes` counts as a miss (and makes the AUC NaN)."""
    xt = normalise(x_test)
    y = np.asarray(y_test)
    index = {c: j for j, c in enumerate(classes)}
    yi = np.array([index.get(v, -1) for v in y.tolist()], dtype=np.int64)  # -1: a class never fitted
    truth = yi[:, None] == np.arange(len(classes))[None, :]  # [T, C]
    unseen = bool((yi < 0).any())
    out = {m: [] for m in METRICS}
    for a in range(0, protos.shape[0], EPISODE_BATCH):
        sims = (protos[a:a + EPISODE_BATCH] @ xt.T).transpose(0, 2, 1)  # [E, T, C]
        pred = sims.argmax(axis=2)
        out["acc"].append((pred == yi[None]).mean(axis=1))
        if binary:  # classes are [0, 1]
            out["auc"].append(_auc_rows(sims[..., 1] - sims[..., 0], truth[:, 1]))
            out["f1"].append(_f1(pred == 1, truth[None, :, 1]))
            continue
        present = [j for j in range(len(classes)) if truth[:, j].any()]
        auc = (np.mean([_auc_rows(sims[..., j], truth[:, j]) for j in present], axis=0)
               if len(present) > 1 and not unseen else np.full(len(pred), NAN))
        out["auc"].append(auc)
        f1s = np.stack([_f1(pred == j, truth[None, :, j]) for j in range(len(classes))], axis=1)  # [E, C]
        defined = ~np.isnan(f1s)  # macro over the classes where F1 is defined (sklearn, zero_division=nan)
        out["f1"].append(np.where(defined.any(axis=1), np.where(defined, f1s, 0).sum(axis=1)
                                  / np.maximum(defined.sum(axis=1), 1), NAN))
    return {m: np.concatenate(v) for m, v in out.items()}


def _summary(values: np.ndarray) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return NAN, NAN
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def prototype_few_shot(x_fit, labels_fit, x_test, labels_test, tasks, shots, episodes: int = 1000, seed: int = 0):
    """({'<task>_<acc|auc|f1>_k<n>': mean, '..._std': sample SD}, notes) over `episodes`
    episodes of n studies per class (n in `shots`), drawn from the fitting split only."""
    metrics, notes = {}, []
    for task in tasks:
        check_task(task)
        fi, fy = known(labels_fit, task)
        ti, ty = known(labels_test, task)
        classes = sorted(set(fy.tolist()))
        unseen = sorted(set(ty.tolist()) - set(classes))
        if unseen and len(classes) > 1:
            notes.append(f"{task} prototypes: test class(es) {unseen} absent from the fitting split "
                         "(never predicted; AUC undefined)")
        for n in (int(s) for s in shots):
            keys = [f"{task}_{m}_k{n}" for m in METRICS]
            metrics.update({k: NAN for k in keys} | {k + "_std": NAN for k in keys})
            if len(ti) == 0:
                notes.append(f"{task} prototypes n={n}: no test study has this label; left out")
                continue
            if len(classes) < 2:
                notes.append(f"{task} prototypes n={n}: the fitting split has a single class; left out")
                continue
            rng = np.random.default_rng([int(seed), n])
            try:
                picks = draw_episodes(fy, n, int(episodes), rng, classes)
            except ValueError as e:
                notes.append(f"{task} prototypes n={n}: {e}; left out")
                continue
            scores = score_episodes(prototypes(x_fit[fi], picks), x_test[ti], ty, classes, binary=task != "acdc")
            for m, k in zip(METRICS, keys):
                metrics[k], metrics[k + "_std"] = _summary(scores[m])
    return metrics, list(dict.fromkeys(notes))
