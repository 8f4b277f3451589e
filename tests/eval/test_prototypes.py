"""Few-shot by class prototypes (cmr_ray.eval.prototypes): separable data, seeds, short classes."""
import math

import numpy as np
import pytest

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval.prototypes import draw_episodes, prototype_few_shot, prototypes


def blobs(n_per: int, classes, seed: int, spread: float = 0.05, dim: int = 16):
    """Embeddings around one axis per class (well apart), labels as the store gives them."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for j, c in enumerate(classes):
        centre = np.zeros(dim)
        centre[j] = 1.0
        x.append(centre + spread * rng.standard_normal((n_per, dim)))
        y += [c] * n_per
    return np.concatenate(x).astype(np.float32), y


def labels_of(y, task):
    if task == "acdc":
        return {"acdc": np.array(y, dtype=object)}
    return {task: np.array(y, dtype=np.float64)}


@pytest.mark.parametrize("task,classes", [("hcm", [0, 1]), ("lv_dilation", [0, 1]), ("acdc", list(ACDC_CLASSES))])
def test_separable_toy_data_reaches_100_percent(task, classes):
    xf, yf = blobs(20, classes, seed=0)
    xt, yt = blobs(10, classes, seed=1)
    m, notes = prototype_few_shot(xf, labels_of(yf, task), xt, labels_of(yt, task), [task], [1, 4, 16],
                                  episodes=200, seed=0)
    assert notes == []
    for n in (1, 4, 16):
        for metric in ("acc", "auc", "f1"):
            assert m[f"{task}_{metric}_k{n}"] == pytest.approx(1.0)
            assert m[f"{task}_{metric}_k{n}_std"] == pytest.approx(0.0)


def test_reproducible_by_seed_and_seed_matters():
    xf, yf = blobs(30, [0, 1], seed=0, spread=1.0)  # overlapping: episodes differ in outcome
    xt, yt = blobs(20, [0, 1], seed=1, spread=1.0)
    args = (xf, labels_of(yf, "hcm"), xt, labels_of(yt, "hcm"), ["hcm"], [1, 4])
    a, _ = prototype_few_shot(*args, episodes=300, seed=7)
    b, _ = prototype_few_shot(*args, episodes=300, seed=7)
    c, _ = prototype_few_shot(*args, episodes=300, seed=8)
    assert a == b
    assert a != c
    assert 0 < a["hcm_acc_k1_std"] and a["hcm_acc_k4_std"] < a["hcm_acc_k1_std"]  # more shots, steadier


def test_episodes_draw_distinct_studies_of_each_class():
    y = np.array([0] * 5 + [1] * 9)
    picks = draw_episodes(y, 4, 50, np.random.default_rng(0), [0, 1])
    assert picks.shape == (50, 2, 4)
    assert (y[picks[:, 0]] == 0).all() and (y[picks[:, 1]] == 1).all()
    assert all(len(set(row)) == 4 for row in picks.reshape(-1, 4).tolist())


def test_prototype_is_the_normalised_mean():
    x = np.array([[2.0, 0.0], [0.0, 3.0]])
    p = prototypes(x, np.array([[[0, 1]]]))
    assert p[0, 0] == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])


def test_a_class_with_fewer_than_n_examples_is_a_note_not_a_crash():
    xf, yf = blobs(6, [0, 1], seed=0)
    yf = [0] * 6 + [1] * 3 + [0] * 3  # class 1 has 3 studies
    xt, yt = blobs(5, [0, 1], seed=1)
    m, notes = prototype_few_shot(xf, labels_of(yf, "hcm"), xt, labels_of(yt, "hcm"), ["hcm"], [1, 4],
                                  episodes=20, seed=0)
    assert not math.isnan(m["hcm_acc_k1"])
    assert math.isnan(m["hcm_acc_k4"]) and math.isnan(m["hcm_acc_k4_std"])
    assert notes == ["hcm prototypes n=4: class 1 has 3 training example(s), fewer than n=4; left out"]


def test_unknown_labels_left_out_and_single_class_noted():
    xf, yf = blobs(8, [0, 1], seed=0)
    yf = np.array(yf, dtype=np.float64)
    yf[:3] = np.nan
    xt, yt = blobs(4, [0, 1], seed=1)
    m, notes = prototype_few_shot(xf, {"hcm": yf}, xt, labels_of(yt, "hcm"), ["hcm"], [2], episodes=10)
    assert m["hcm_acc_k2"] == pytest.approx(1.0)
    m, notes = prototype_few_shot(xf, {"hcm": np.zeros(16)}, xt, labels_of(yt, "hcm"), ["hcm"], [2], episodes=10)
    assert math.isnan(m["hcm_auc_k2"]) and "single class" in notes[0]


def test_evaluate_method_logs_prototype_keys_beside_the_logistic_few_shot(fake_store, cfg):
    from cmr_ray.config import apply_overrides
    from cmr_ray.eval.evaluation import evaluate_method, fresh_model
    from cmr_ray.eval.tables import build_tables, prefix

    cfg = apply_overrides(cfg, {"eval.prototype_shots": [1, 2], "eval.prototype_episodes": 40,
                                "eval.few_shot": [1], "eval.few_shot_seeds": 1, "eval.bootstrap": 0})
    metrics, _, _ = evaluate_method(fresh_model(cfg), cfg, fake_store, progress=False)
    for key in ("fewshot/hcm_auc_k1", "fewshot_proto/hcm_auc_k1", "fewshot_proto/hcm_auc_k1_std",
                "fewshot_proto/acdc_acc_k2", "fewshot_proto/acdc_f1_k2_std", "fewshot_proto/nicm_f1_k2"):
        assert key in metrics, key
    assert 0.0 <= metrics["fewshot_proto/acdc_acc_k2"] <= 1.0
    again, _, _ = evaluate_method(fresh_model(cfg), cfg, fake_store, progress=False)
    assert all(again[k] == metrics[k] or (math.isnan(again[k]) and math.isnan(metrics[k]))
               for k in metrics if k.startswith("fewshot_proto/"))  # eval.prototype_seed: the same episodes
    tables = build_tables({prefix("simclr") + k: v for k, v in metrics.items()}, ["simclr"], tasks=["hcm", "acdc"])
    rows = tables["fewshot_proto"]["rows"]
    assert tables["fewshot_proto"]["header"] == ["Method", "Task", "n=1", "n=2"]
    assert rows[0][:2] == ["SimCLR", "NICM AUC"] and " ± " in rows[0][2]
