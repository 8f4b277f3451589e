"""Zero-shot classification by text prompts (CLIP-style, as EchoCLIP does).

    from cmr_ray.eval.zeroshot import zero_shot_prompts
    metrics, notes = zero_shot_prompts(model.encode_text, fit_video, fit_labels,
                                       test_video, test_labels, ["hcm", "acdc"])

Binary labels: each has positive and negative prompts (`PROMPTS`: one of each per
diagnosis; `FINDING_PROMPTS`: several phrasings per finding, as reports vary them); the
prompts of a side are embedded, L2-normalised, averaged and renormalised (prompt
ensembling), and a study's score is sim(video, positive) - sim(video, negative).  The decision threshold is the one that
maximises balanced accuracy on the fitting (training) split's scores — test labels are
never looked at before scoring; AUC on test is threshold-free.  The 5-class `acdc` label
has one prompt per class; the prediction is the most similar prompt and the class
probabilities are a softmax of similarity / temperature (no training data at all).
Embeddings are L2-normalised, so similarity is the dot product.

`text_prompt_auc(encode_text, impressions, labels, tasks)` scores the prompts against
report text instead of videos (the text tower alone): a check on the wording of the
prompts, not a metric of a model (`bench/bench_prompts.py` prints it per finding).
"""
from __future__ import annotations

import numpy as np

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval.probe import METRICS, NAN, check_task, known, score_predictions

# Clinical phrasing as radiologists write impressions (and as the synthetic reports do).
PROMPTS: dict[str, tuple[str, str]] = {
    "nicm": ("Dilated left ventricle with reduced systolic function and mid-wall fibrosis, "
             "consistent with non-ischemic cardiomyopathy.",
             "No evidence of non-ischemic cardiomyopathy."),
    "icm": ("Subendocardial infarct scar in a coronary territory, consistent with ischemic cardiomyopathy.",
            "No evidence of myocardial infarction."),
    "amyl": ("Cardiac amyloidosis with diffuse subendocardial enhancement and concentric hypertrophy.",
             "No evidence of cardiac amyloidosis."),
    "hcm": ("Asymmetric septal hypertrophy consistent with hypertrophic cardiomyopathy.",
            "No evidence of hypertrophic cardiomyopathy."),
}
# Several phrasings per finding (positive, negative), worded as impressions word them (the
# synthetic reports: cmr_ray/synth/report.py), in both house styles (the external one writes
# LV/RV, "enlarged", "pericardial fluid collection").  A negative never merely negates a
# positive: with a mean-pooled text tower "No late gadolinium enhancement" embeds beside
# "late gadolinium enhancement", so such a pair cancels what the finding is and leaves the
# score to the rest of the words (issue 20: the old lge_present prompts said "late
# gadolinium enhancement" on the positive side, which only negative impressions say, and
# ranked studies backwards).  Positive LGE impressions name the scar instead ("infarct scar",
# "mid-wall fibrosis", "patchy LGE", "diffuse subendocardial LGE"); negative RV prompts avoid
# "normal in size", which every normal LV's impression says.  bench/bench_prompts.py measures
# each finding's text-side AUC on generated reports; tests/eval/test_zeroshot.py holds it.
FINDING_PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lv_systolic_dysfunction": (
        ("The left ventricle has moderately reduced systolic function, EF 35%.",
         "Severely reduced left ventricular systolic function (LVEF 25%).",
         "Mildly reduced left ventricular systolic function, EF 45%.",
         "Normal-sized LV; moderately reduced systolic function (LVEF 38 %)."),
        ("The left ventricle has normal systolic function, EF 62%.",
         "Normal left ventricular size, wall thickness and systolic function.",
         "Normal LV systolic function (LVEF 60 %).")),
    "lv_dilation": (
        ("The left ventricle is moderately dilated.", "Mildly dilated left ventricle.",
         "Severely dilated left ventricle.", "Moderately enlarged LV.", "The LV is mildly enlarged."),
        ("The left ventricle is normal in size.", "Normal-sized left ventricle.", "Normal LV size.")),
    "lv_hypertrophy": (
        ("Normal-sized left ventricle with concentric hypertrophy.",
         "The left ventricle is normal in size with asymmetric septal hypertrophy.",
         "Asymmetric septal hypertrophy (maximal 18 mm).", "Concentric LV hypertrophy."),
        ("Normal left ventricular wall thickness.", "Wall thickness is normal.", "Normal wall thickness.")),
    "rv_systolic_dysfunction": (
        ("Right ventricular systolic dysfunction, RVEF 35%.",
         "Moderately reduced right ventricular systolic function (RVEF 38%).",
         "Right ventricle dilated with reduced systolic function."),
        ("Normal right ventricular systolic function.", "The right ventricle is normal.",
         "Preserved right ventricular function.")),
    "rv_dilation": (
        ("Moderately dilated right ventricle with moderately reduced systolic function (RVEF 30%).",
         "Right ventricle mildly dilated with mildly reduced systolic function.",
         "Severely dilated right ventricle (basal diameter 50 mm).", "Moderately enlarged right ventricle.",
         "Normal left ventricular size and systolic function; dilated right ventricle."),
        ("The right ventricle is normal.", "Normal right ventricle.", "The right ventricle is unremarkable.")),
    "lge_present": (
        ("Subendocardial infarct scar in a coronary territory, consistent with ischemic cardiomyopathy.",
         "Transmural infarct scar, non-viable.", "Mid-wall fibrosis, a non-ischemic pattern.",
         "Patchy LGE at the right ventricular insertion points.",
         "Diffuse subendocardial LGE with abnormal myocardial nulling."),
        ("No late gadolinium enhancement.", "No evidence of myocardial infarction, infiltration or fibrosis.",
         "No myocardial scar or fibrosis.")),
    "pericardial_effusion": (
        ("Small pericardial effusion (5 mm).", "Small pericardial effusion, 6 mm, without tamponade physiology.",
         "Small pericardial fluid collection (0.5 cm)."),
        ("The pericardium is normal.", "Normal pericardium.", "No pericardial thickening.")),
}
CLASS_PROMPTS: dict[str, str] = {
    "NOR": "Normal left ventricular size, wall thickness and systolic function. No late gadolinium enhancement.",
    "MINF": "Infarct scar in a coronary territory with regional wall motion abnormality, prior myocardial infarction.",
    "DCM": "Dilated left ventricle with reduced systolic function, consistent with dilated cardiomyopathy.",
    "HCM": "Left ventricular hypertrophy with increased wall thickness.",
    "RV": "Dilated right ventricle with reduced systolic function; normal left ventricle.",
}


def choose_threshold(scores, y) -> float:
    """Threshold t (predict positive when score > t) maximising balanced accuracy on (scores, y)."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    if y.all() or (~y).all():
        raise ValueError("choose_threshold: needs both classes among the fitting scores")
    u = np.unique(scores)
    cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
    pred = scores[None, :] > cands[:, None]
    tpr = (pred & y).sum(1) / y.sum()
    tnr = (~pred & ~y).sum(1) / (~y).sum()
    return float(cands[int(np.argmax(tpr + tnr))])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _embed(encode_text, texts: list[str]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = encode_text(list(texts))
    return out.float().cpu().numpy() if hasattr(out, "cpu") else np.asarray(out, np.float32)


def _side(texts) -> tuple[str, ...]:
    return (texts,) if isinstance(texts, str) else tuple(texts)


def prompt_direction(encode_text, positive, negative) -> np.ndarray:
    """mean(positive) - mean(negative) of the L2-normalised prompt embeddings, each mean
    renormalised: a study's score is video @ direction.  `positive`/`negative`: a prompt or several."""
    pos, neg = _side(positive), _side(negative)
    emb = _embed(encode_text, [*pos, *neg]).astype(np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    p, n = emb[:len(pos)].mean(0), emb[len(pos):].mean(0)
    return (p / max(np.linalg.norm(p), 1e-12) - n / max(np.linalg.norm(n), 1e-12)).astype(np.float32)


def text_prompt_auc(encode_text, texts, labels: dict, tasks, prompts=None) -> dict[str, float]:
    """{task: AUC} of the prompts on report text itself: text i scores emb(text_i) @ direction
    (embeddings L2-normalised; `prompt_direction`), against labels[task] (NaN/None unknown).
    No video and no threshold: how well the prompts separate the reports they stand for, an
    upper bound of sorts for the video side (a trained model's videos sit near their reports).
    NaN for a task whose known labels lack a class."""
    from sklearn.metrics import roc_auc_score

    prompts = {**PROMPTS, **FINDING_PROMPTS, **(prompts or {})}
    unknown = [t for t in tasks if t not in prompts]
    if unknown:
        raise ValueError(f"text_prompt_auc: no (positive, negative) prompts for {', '.join(unknown)}")
    said = list(dict.fromkeys(t for task in tasks for side in prompts[task] for t in _side(side)))
    table = dict(zip(said, _embed(encode_text, said)))  # every prompt in one batch

    def lookup(batch):
        return np.stack([table[t] for t in batch])
    emb = _embed(encode_text, list(texts)).astype(np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = {}
    for task in tasks:
        idx, y = known(labels, task)
        if len(np.unique(y)) < 2:
            out[task] = NAN
            continue
        out[task] = float(roc_auc_score(y, emb[idx] @ prompt_direction(lookup, *prompts[task])))
    return out


def zero_shot_prompts(encode_text, fit_video, fit_labels, test_video, test_labels, tasks,
                      temperature: float = 0.05, prompts=None, class_prompts=None):
    """({'hcm_acc': ..., 'lv_dilation_auc': ..., 'acdc_auc': ...}, notes) for the tasks that have
    prompts.  `prompts`: {task: (positive, negative)}, each a prompt or several, over the defaults."""
    prompts = {**PROMPTS, **FINDING_PROMPTS, **(prompts or {})}
    class_prompts = {**CLASS_PROMPTS, **(class_prompts or {})}
    metrics, notes = {}, []
    for task in tasks:
        check_task(task)
        ti, ty = known(test_labels, task)
        if len(ti) == 0:
            metrics.update({f"{task}_{k}": NAN for k in METRICS})
            notes.append(f"zero-shot {task}: no test study has this label")
            continue
        if task == "acdc":
            emb = _embed(encode_text, [class_prompts[c] for c in ACDC_CLASSES])
            sims = test_video[ti] @ emb.T
            pred = np.array([ACDC_CLASSES[j] for j in sims.argmax(1)], dtype=object)
            m, more = score_predictions(task, ty, pred, _softmax(sims / temperature), list(ACDC_CLASSES))
        else:
            direction = prompt_direction(encode_text, *prompts[task])
            fi, fy = known(fit_labels, task)
            try:
                thr = choose_threshold(fit_video[fi] @ direction, fy)
            except ValueError:
                metrics.update({f"{task}_{k}": NAN for k in METRICS})
                notes.append(f"zero-shot {task}: the training split lacks a class; no threshold")
                continue
            score = test_video[ti] @ direction
            m, more = score_predictions(task, ty, (score > thr).astype(np.int64), score, [0, 1])
        notes += [f"zero-shot {n}" for n in more]
        metrics.update({f"{task}_{k}": v for k, v in m.items()})
    return metrics, notes
