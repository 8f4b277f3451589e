"""model.video_init: the video tower from a tiny ViT or TimeSformer saved locally (no hub)."""
import pytest
import torch
from transformers import TimesformerConfig, TimesformerModel, ViTConfig, ViTModel

from cmr_ray.model import VideoInitError, build_model, load_video_init
from cmr_ray.model.video import FrameMeanTower, TimesformerTower
from cmr_ray.model.vit_init import resize_grid, vit_weight

D, LAYERS, HEADS, PATCH = 32, 2, 2, 16


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    torch.manual_seed(1)
    conf = ViTConfig(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=4 * D,
                     image_size=32, patch_size=PATCH, num_channels=3, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = ViTModel(conf, add_pooling_layer=False).eval()
    with torch.no_grad():  # no zero biases or unit norms left: every copy is checkable
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("tiny-vit")
    model.save_pretrained(path)
    return str(path), model


def tower(image_size=32, max_frames=8, **kw):
    torch.manual_seed(0)
    return TimesformerTower(image_size=image_size, patch_size=PATCH, hidden_size=D, layers=LAYERS, heads=HEADS,
                            max_frames=max_frames, **kw).eval()


def test_every_weight_is_copied_tensor_by_tensor(tiny_vit):
    path, vit = tiny_vit
    t = tower(image_size=48)  # a 3x3 patch grid over the checkpoint's 2x2
    filled = load_video_init(t, path)
    src = vit.state_dict()
    dst = t.backbone.state_dict()
    assert sorted(filled) == sorted(dst)  # nothing left at random
    eq = torch.testing.assert_close
    eq(dst["embeddings.cls_token"], src["embeddings.cls_token"])
    eq(dst["embeddings.patch_embeddings.projection.weight"],
       src["embeddings.patch_embeddings.projection.weight"].sum(dim=1, keepdim=True))
    eq(dst["embeddings.patch_embeddings.projection.bias"], src["embeddings.patch_embeddings.projection.bias"])
    pos = dst["embeddings.position_embeddings"]
    assert pos.shape == (1, 1 + 9, D)
    eq(pos[:, :1], src["embeddings.position_embeddings"][:, :1])
    eq(pos, resize_grid(src["embeddings.position_embeddings"], (3, 3)))
    assert torch.count_nonzero(dst["embeddings.time_embeddings"]) == 0
    eq(dst["layernorm.weight"], src["layernorm.weight"])
    eq(dst["layernorm.bias"], src["layernorm.bias"])
    for i in range(LAYERS):  # vit_weight: the ViT's names in either transformers naming
        d = f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            qkv = torch.cat([vit_weight(src, i, n, p) for n in "qkv"])
            eq(dst[d + f"attention.attention.qkv.{p}"], qkv)
            eq(dst[d + f"temporal_attention.attention.qkv.{p}"], qkv)
            out_proj = vit_weight(src, i, "attention.output.dense", p)
            eq(dst[d + f"attention.output.dense.{p}"], out_proj)
            eq(dst[d + f"temporal_attention.output.dense.{p}"], out_proj)
            eq(dst[d + f"temporal_layernorm.{p}"], vit_weight(src, i, "layernorm_before", p))
            for k in ("layernorm_before", "layernorm_after", "intermediate.dense", "output.dense"):
                eq(dst[d + f"{k}.{p}"], vit_weight(src, i, k, p))
            assert torch.count_nonzero(dst[d + f"temporal_dense.{p}"]) == 0  # the temporal branch adds nothing


@pytest.mark.parametrize("frames", [1, 8, 64])
def test_at_start_the_tower_is_the_image_model_on_every_frame(tiny_vit, frames):
    """Temporal attention is the identity at step 0: a clip of one image repeated gives the
    ViT's CLS for that image copied to three channels, at any frame count."""
    path, vit = tiny_vit
    t = tower(input_norm="none")
    load_video_init(t, path)
    img = torch.rand(2, 32, 32)
    with torch.no_grad():
        ref = vit(pixel_values=img[:, None].expand(-1, 3, -1, -1)).last_hidden_state[:, 0]
        out = t(img[:, None].expand(-1, frames, -1, -1).contiguous())
    assert out.shape == (2, D)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("frames", [1, 8, 64])
def test_forward_and_backward_at_any_frame_count(tiny_vit, frames):
    t = tower(image_size=48).train()
    load_video_init(t, tiny_vit[0])
    out = t(torch.rand(2, frames, 48, 48))
    out.square().sum().backward()
    assert out.shape == (2, D) and torch.isfinite(out).all()
    dense = t.backbone.encoder.layer[0].temporal_dense.weight
    assert dense.grad is not None and dense.grad.abs().sum() > 0  # the identity start can learn


def test_frame_mean_tower_takes_the_spatial_weights(tiny_vit):
    path, vit = tiny_vit
    torch.manual_seed(0)
    fm = FrameMeanTower(image_size=32, patch_size=PATCH, hidden_size=D, layers=LAYERS, heads=HEADS).eval()
    load_video_init(fm, path)
    torch.testing.assert_close(fm.frame.backbone.encoder.layer[1].output.dense.weight,
                               vit_weight(vit.state_dict(), 1, "output.dense", "weight"))


def test_from_a_timesformer_checkpoint(tmp_path):
    torch.manual_seed(2)
    conf = TimesformerConfig(image_size=32, patch_size=PATCH, num_channels=3, num_frames=4, hidden_size=D,
                             num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=4 * D)
    src_model = TimesformerModel(conf)
    with torch.no_grad():
        src_model.embeddings.time_embeddings.normal_()
    src_model.save_pretrained(tmp_path)
    src = src_model.state_dict()
    t = tower(max_frames=8)
    load_video_init(t, str(tmp_path))
    dst = t.backbone.state_dict()
    torch.testing.assert_close(dst["embeddings.patch_embeddings.projection.weight"],
                               src["embeddings.patch_embeddings.projection.weight"].sum(1, keepdim=True))
    time = dst["embeddings.time_embeddings"]
    assert time.shape == (1, 8, D)
    torch.testing.assert_close(time[0, [0, -1]], src["embeddings.time_embeddings"][0, [0, -1]])
    for k in src:
        if k.startswith("encoder."):
            torch.testing.assert_close(dst[k], src[k])


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(VideoInitError, match=r"model.video_init .*not available on this machine.*nothing is downloaded"):
        load_video_init(tower(), str(tmp_path / "no-such-vit"))
    with pytest.raises(VideoInitError, match="not available on this machine"):
        load_video_init(tower(), "google/vit-no-such-model-for-cmr-ray")  # HF_HUB_OFFLINE: never the network


def test_a_checkpoint_of_other_sizes_is_refused(tiny_vit):
    t = TimesformerTower(image_size=32, patch_size=PATCH, hidden_size=2 * D, layers=LAYERS, heads=HEADS)
    with pytest.raises(VideoInitError, match=r"does not fit the video tower: hidden_size 32 \(the tower has 64\)"):
        load_video_init(t, tiny_vit[0])


def test_build_model_reads_video_init(tiny_vit, tiny_cfg):
    path, vit = tiny_vit
    cfg = tiny_cfg.with_overrides({"model.video_init": path, "model.layers": LAYERS, "model.hidden_size": D})
    model = build_model(cfg)
    torch.testing.assert_close(model.video.backbone.layernorm.weight, vit.layernorm.weight)
    bare = build_model(cfg, video_init=False)  # our checkpoint is loaded next: the ViT is not read
    assert not torch.allclose(bare.video.backbone.layernorm.weight, vit.layernorm.weight)
