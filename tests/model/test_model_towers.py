"""Video and text towers, and the assembled CMRClip (tiny sizes, one process, no Ray)."""
import pytest
import torch
from transformers import TimesformerModel

from cmr_ray.model import CMRClip, TextModelError, build_model, video_sizes
from cmr_ray.model.sizes import PAPER_VIDEO
from cmr_ray.model.text import TextTower, impression_id, mean_pool, normalize_impression
from cmr_ray.model.video import FrameMeanTower, TimesformerTower


def tower(**kw):
    torch.manual_seed(0)
    args = dict(image_size=32, patch_size=16, hidden_size=32, layers=2, heads=2, max_frames=4)
    args.update(kw)
    return TimesformerTower(**args).eval()


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 9, 64])
def test_any_frame_count_gives_one_vector(frames):
    out = tower()(torch.rand(2, frames, 32, 32))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_matches_transformers_forward_at_the_configured_size():
    t = tower(pool="cls")
    x = torch.rand(2, 4, 32, 32)
    ref = TimesformerModel.forward(t.backbone, x[:, :, None]).last_hidden_state[:, 0]
    assert torch.allclose(t(x), ref, atol=1e-5)


def test_temporal_embedding_is_interpolated_not_repeated():
    t = tower(max_frames=4)
    emb = t.backbone.embeddings
    x = torch.zeros(1, 7, 32, 32)
    tokens = t._embed(x)[:, 1:].reshape(1, 4, 7, -1)  # patch-major: [B, patches, F, D]
    time_part = tokens[0, 0] - tokens[0, 0, :1]  # subtract frame 0 (same patch, same pixels)
    src = emb.time_embeddings[0]
    # first and last frames hit the ends of the learnt table; the middle lies between
    assert torch.allclose(time_part[-1], src[-1] - src[0], atol=1e-5)
    assert torch.allclose(time_part[3], (src[1] + src[2]) / 2 - src[0], atol=1e-5)


def test_frame_order_matters_for_timesformer():
    t = tower()
    x = torch.rand(1, 4, 32, 32)
    assert not torch.allclose(t(x), t(x.flip(1)), atol=1e-4)


def test_zero_temporal_init_makes_the_temporal_branch_add_nothing_at_step_0():
    """model.temporal_init=zero: every layer's temporal output projection is zero, so the
    temporal attention's own weights cannot change the output until that projection moves;
    with the default random start they do."""
    x = torch.rand(2, 4, 32, 32)

    def moved_by_temporal_attention(t):
        before = t(x)
        with torch.no_grad():
            for layer in t.backbone.encoder.layer:
                for p in layer.temporal_attention.parameters():
                    p.add_(torch.randn_like(p))
        return not torch.allclose(before, t(x), atol=1e-6)

    zero = tower(temporal_init="zero")
    assert all(not layer.temporal_dense.weight.detach().any() for layer in zero.backbone.encoder.layer)
    assert not moved_by_temporal_attention(zero)
    assert moved_by_temporal_attention(tower())
    with pytest.raises(ValueError, match="temporal_init"):
        tower(temporal_init="identity")


def test_other_image_size_and_mean_pool():
    t = tower(pool="mean")
    assert t(torch.rand(2, 3, 48, 48)).shape == (2, 32)
    with pytest.raises(ValueError, match="multiple of patch size"):
        t(torch.rand(1, 2, 40, 40))
    with pytest.raises(ValueError, match="frames"):
        t(torch.rand(1, 65, 32, 32))


def test_gradient_checkpointing_same_values_and_grads():
    x = torch.rand(2, 4, 32, 32)
    outs = []
    for ckpt in (False, True):
        t = tower(grad_checkpointing=ckpt).train()
        y = t(x)
        y.pow(2).sum().backward()
        outs.append((y.detach(), t.backbone.encoder.layer[0].attention.attention.qkv.weight.grad.clone()))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-6)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-5)


def test_framemean_is_order_free_mean_of_frames():
    torch.manual_seed(0)
    fm = FrameMeanTower(image_size=32, patch_size=16, hidden_size=32, layers=1, heads=2).eval()
    x = torch.rand(2, 5, 32, 32)
    per = torch.stack([fm.frame(x[:, i:i + 1]) for i in range(5)], 1).mean(1)
    assert torch.allclose(fm(x), per, atol=1e-5)
    assert torch.allclose(fm(x), fm(x.flip(1)), atol=1e-5)


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert torch.allclose(mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 2.0]]))


def test_text_tower_padding_does_not_change_a_text(tiny_text_model):
    tt = TextTower(tiny_text_model, max_length=128).eval()
    with torch.no_grad():
        alone = tt(["normal study"])
        padded = tt(["normal study", "a much longer impression with many more words in it than the first"])[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_text_truncation_at_the_model_limit(tiny_text_model):
    tt = TextTower(tiny_text_model, max_length=128)
    assert tt.max_length == 64  # the tiny model has 64 positions
    assert tt.tokenize(["word " * 500])["input_ids"].shape[1] == 64
    assert TextTower(tiny_text_model, max_length=16).max_length == 16


def test_missing_text_model_is_one_clear_line(tmp_path):
    with pytest.raises(TextModelError) as e:
        TextTower(str(tmp_path / "no-such-model"))
    msg = str(e.value)
    assert "model.text_model" in msg and "no-such-model" in msg and "\n" not in msg


def test_impression_ids_normalise():
    assert impression_id("No LGE.  Normal LV.") == impression_id("no lge normal lv")
    assert impression_id("EF 35%") != impression_id("EF 55%")
    assert impression_id("LVEF 3.5") != impression_id("LVEF 35")
    assert normalize_impression("  Mild, diffuse  LGE! ") == "mild diffuse lge"


def test_build_model_embeddings_and_frozen_text_cache(tiny_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path))  # an empty disk cache: other tests' features not reused
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    assert isinstance(model, CMRClip) and model.freeze_text
    v = model.encode_video(torch.rand(3, 4, 32, 32))
    assert v.shape == (3, 16) and torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    calls = []
    real = model.text.forward
    monkeypatch.setattr(model.text, "forward", lambda texts: calls.append(list(texts)) or real(texts))
    t1 = model.encode_text(["a", "b", "a"])
    t2 = model.encode_text(["b", "a"])
    assert calls == [["a", "b"]]  # each distinct impression encoded once
    assert torch.allclose(t1[0], t2[1]) and torch.allclose(t1[0], t1[2])
    assert t1.shape == (3, 16) and torch.allclose(t1.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not any(p.requires_grad for p in model.text.parameters())
    assert model.text_proj.weight.requires_grad
    assert not any(k.startswith("text.") for k in model.trainable_state_dict())
    model.train()
    assert not model.text.training and model.video.training


def test_unfrozen_text_and_frozen_video(tiny_cfg):
    cfg = tiny_cfg.with_overrides({"model.freeze_text": False, "model.freeze_video": True})
    model = build_model(cfg)
    v, t, scale = model(torch.rand(2, 4, 32, 32), ["x", "y"])
    (v * t).sum().backward()
    assert any(p.grad is not None for p in model.text.parameters())
    assert all(p.grad is None for p in model.video.parameters())
    assert model.video_proj.weight.grad is not None
    assert any(k.startswith("text.") for k in model.trainable_state_dict())


def test_learnable_temperature_starts_at_config_and_clamps(tiny_cfg):
    cfg = tiny_cfg.with_overrides({"model.learn_temperature": True, "model.temperature": 0.05})
    model = build_model(cfg)
    assert isinstance(model.log_scale, torch.nn.Parameter)
    assert float(model.logit_scale().detach()) == pytest.approx(20.0, rel=1e-5)
    with torch.no_grad():
        model.log_scale.fill_(10.0)
    assert float(model.logit_scale().detach()) == pytest.approx(100.0)
    model.clamp_logit_scale_()
    assert float(model.log_scale.detach()) == pytest.approx(torch.log(torch.tensor(100.0)).item())
    fixed = build_model(tiny_cfg)
    assert "log_scale" in dict(fixed.named_buffers()) and float(fixed.logit_scale()) == pytest.approx(20.0)


def test_vit_b16_size_is_the_papers_tower(tiny_cfg):
    cfg = tiny_cfg.with_overrides({"model.size": "vit_b16", "data.image_size": 224})
    s = video_sizes(cfg)
    assert s == {**PAPER_VIDEO, "image_size": 224}
    assert (s["hidden_size"], s["layers"], s["heads"], s["patch_size"], s["max_frames"]) == (768, 12, 12, 16, 64)
    assert video_sizes(tiny_cfg)["max_frames"] == 4


def test_standardised_input_ignores_the_scanner_gain_and_spreads_the_untrained_embeddings():
    """model.input_norm='clip' (the default): a clip times a gain embeds the same, and the
    untrained tower's embeddings of different clips differ more than with raw grey levels
    (raw: nearly one point, the plateau of issue 14)."""
    from torch.nn import functional as F

    from cmr_ray.model.video import standardise

    x = torch.rand(8, 4, 32, 32) * 0.3
    norm, raw = tower(input_norm="clip"), tower(input_norm="none")
    assert torch.allclose(norm(x), norm(0.5 * x), atol=5e-3)  # up to the 1e-3 in the std
    assert torch.allclose(standardise(x).mean(dim=(1, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.equal(standardise(x, "none"), x)

    def spread(t):
        with torch.no_grad():
            e = F.normalize(t(x), dim=-1)
        return float((1 - e.mean(0).norm() ** 2).sqrt())

    assert spread(norm) > 2 * spread(raw)
    with pytest.raises(ValueError, match="input_norm"):
        tower(input_norm="batch")


def test_build_model_takes_input_norm_from_the_config():
    from cmr_ray.config import load_config
    from cmr_ray.model.clip import build_video_tower

    cfg = load_config(None, {"data.image_size": 32, "model.hidden_size": 32, "model.heads": 2})
    assert cfg["model"]["input_norm"] == "clip" and build_video_tower(cfg).input_norm == "clip"
    cfg = cfg.replace("model.input_norm", "none")
    assert build_video_tower(cfg).input_norm == "none"
