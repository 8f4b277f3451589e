"""Zero-shot prompts: the threshold comes from the training split only."""
import math

import numpy as np
import pytest

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval import zeroshot
from cmr_ray.eval.zeroshot import CLASS_PROMPTS, PROMPTS, choose_threshold, zero_shot_prompts


def test_choose_threshold_hand_case():
    assert choose_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5)
    # imbalance: balanced accuracy, not accuracy, picks the cut
    assert choose_threshold([0.0, 0.1, 0.2, 0.3, 0.4, 0.6], [0, 0, 0, 0, 1, 1]) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([0.1, 0.2], [1, 1])


def _encoder(dim=8):
    """Fake text tower: the hcm positive prompt is e0, the negative e1, class prompts e2..e6."""
    table = {PROMPTS["hcm"][0]: 0, PROMPTS["hcm"][1]: 1}
    table.update({CLASS_PROMPTS[c]: 2 + i for i, c in enumerate(ACDC_CLASSES)})

    def encode(texts):
        return np.eye(dim, dtype=np.float32)[[table[t] for t in texts]]
    return encode


def _video(scores, dim=8):
    v = np.zeros((len(scores), dim), np.float32)
    v[:, 0] = scores  # sim(pos) - sim(neg) = score
    return v


def test_threshold_from_training_split_only():
    fit_scores = np.array([-0.3, -0.2, -0.1, 0.5, 0.6, 0.7])  # best cut at 0.2
    fit = {"hcm": np.array([0, 0, 0, 1, 1, 1], float)}
    test_scores = np.array([0.0, 0.1, 0.3, 0.4])
    for test_y in ([0, 0, 1, 1], [1, 1, 0, 0]):  # test labels never move the threshold
        calls = []
        real = zeroshot.choose_threshold
        zeroshot.choose_threshold = lambda s, y: calls.append((np.array(s), np.array(y))) or real(s, y)
        try:
            m, _ = zero_shot_prompts(_encoder(), _video(fit_scores), fit, _video(test_scores),
                                     {"hcm": np.array(test_y, float)}, ["hcm"])
        finally:
            zeroshot.choose_threshold = real
        assert len(calls) == 1 and np.allclose(calls[0][0], fit_scores) and calls[0][1].tolist() == [0, 0, 0, 1, 1, 1]
        pred = (test_scores > 0.2).astype(int)  # the training split's threshold
        assert m["hcm_acc"] == pytest.approx(np.mean(pred == np.array(test_y)))
    assert m["hcm_auc"] == 0.0  # perfectly reversed test labels


def test_acdc_by_most_similar_prompt_and_missing_class():
    v = np.zeros((5, 8), np.float32)
    v[np.arange(5), 2 + np.arange(5)] = 1.0  # study i most similar to class prompt i
    labels = {"acdc": np.array(list(ACDC_CLASSES), dtype=object), "hcm": np.array([0, 0, 0, 0, 0], float)}
    m, notes = zero_shot_prompts(_encoder(), v, labels, v, labels, ["acdc", "hcm"])
    assert m["acdc_acc"] == 1.0 and m["acdc_auc"] == 1.0 and m["acdc_f1"] == 1.0
    assert math.isnan(m["hcm_acc"]) and any("hcm" in n for n in notes)
