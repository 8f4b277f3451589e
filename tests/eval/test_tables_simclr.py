"""Paper-layout tables from a metrics dict; the SimCLR loss and its two views."""
import math

import numpy as np
import pytest
import torch

from cmr_ray.eval.simclr import nt_xent, two_views
from cmr_ray.eval.tables import build_tables, markdown, to_csv, write_tables


def test_tables_layout_and_missing_values(tmp_path):
    m = {"test/t2v_r5": 12.345, "test/rsum": 300.0, "baseline/zeroshot/test/rsum": 80.0,
         "probe/hcm_auc": 0.9123, "probe/hcm_acc": float("nan"), "fewshot/hcm_auc_k4": 0.7,
         "zeroshot_prompt/hcm_auc": 0.8}
    tables = build_tables(m, ["zeroshot", "ours"], few_shot=[4], tasks=["hcm", "acdc"])
    ret = tables["retrieval"]
    assert ret["header"] == ["Method", "T2V R@5", "T2V R@10", "T2V R@50", "V2T R@5", "V2T R@10", "V2T R@50", "RSUM"]
    assert ret["rows"][0][0] == "Zero-shot" and ret["rows"][0][-1] == "80.0"
    assert ret["rows"][1][:2] == ["CMR-CLIP (ours)", "12.3"] and ret["rows"][1][2] == "n/a"
    b = tables["probe_binary"]
    assert b["header"] == ["Method", "HCM Acc", "HCM AUC", "HCM F1"]
    assert b["rows"][1] == ["CMR-CLIP (ours)", "n/a", "0.912", "n/a"]
    assert tables["fewshot"]["rows"][2] == ["CMR-CLIP (ours)", "HCM AUC", "0.700", "0.912"]
    assert tables["zeroshot_prompts"]["rows"][0][:3] == ["HCM", "n/a", "0.800"]
    md = markdown(ret)
    assert md.splitlines()[2].startswith("| Method | T2V R@5")
    assert to_csv(b).splitlines()[0] == "Method,HCM Acc,HCM AUC,HCM F1"
    text = write_tables(tables, tmp_path, notes=["hcm: something"])
    assert (tmp_path / "retrieval.csv").exists() and "- hcm: something" in text


def test_nt_xent_hand_value_and_gradient():
    b, tau = 4, 0.5
    z = torch.eye(b, 8)
    loss = nt_xent(z, z.clone(), tau)  # each view's positive is identical, negatives orthogonal
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (2 * b - 2)))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    z1 = torch.randn(6, 8, requires_grad=True)
    z2 = torch.randn(6, 8)
    nt_xent(z1, z2).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
    aligned = nt_xent(z2, z2 + 0.01 * torch.randn(6, 8))
    assert float(aligned) < float(nt_xent(z1.detach(), z2))


def test_two_views_differ_and_stay_in_range(few_rows):
    rows = few_rows
    a, b = two_views(rows, "cine:sax|lge:sax", 4, np.random.default_rng(0))
    assert a.shape == b.shape == (3, 4, 16, 16) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert not np.allclose(a, b)


def test_simclr_noise_is_independent_per_view_pixel_and_frame():
    from cmr_ray.eval.simclr import add_noise

    clip = np.full((2, 32, 32), 128, np.uint8)            # two identical frames, e.g. a repeated LGE long-axis slice
    assert add_noise(clip, 0.0, np.random.default_rng(0)) is clip
    out = add_noise(clip, 8.0, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == clip.shape
    diff = out.astype(np.float32) - clip
    assert 6.5 < diff.std() < 9.5                           # the SD asked for (integer truncation aside)
    assert not np.array_equal(out[0], out[1])               # each frame its own draw
    assert abs(np.corrcoef(diff[0].ravel(), diff[1].ravel())[0, 1]) < 0.1
    assert add_noise(np.full((1, 8, 8), 250, np.uint8), 50.0, np.random.default_rng(1)).max() <= 255  # clipped


def test_two_views_add_the_noise_asked_for(few_rows):
    # the same generator state: the first view's frame and affine are drawn alike, then the noise
    kw = dict(combo="cine:sax", frames=1)
    a, b = two_views(few_rows, rng=np.random.default_rng(3), noise=8.0, **kw)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.shape == b.shape
    a0, b0 = two_views(few_rows, rng=np.random.default_rng(3), noise=0.0, **kw)
    assert not np.allclose(a, a0)                          # noise was added
    assert np.abs((a[0] - a0[0]) * 255).mean() > 3         # about the SD asked for (8: mean |x| 6.4, less where clipped at 0)


def test_simclr_crop_zooms_into_the_frame_alike_for_every_frame_and_never_past_its_edge():
    from cmr_ray.eval.simclr import crop_params, random_crop

    rng = np.random.default_rng(5)
    ramp = np.tile(np.linspace(100, 200, 48), (48, 1))         # grey level rises left to right
    clip = np.stack([ramp, ramp.T]).round().astype(np.uint8)   # frame 2 rises top to bottom
    state = rng.bit_generator.state
    assert random_crop(clip, 1.0, rng) is clip and rng.bit_generator.state == state  # 1: unchanged, no draw
    for _ in range(20):
        zoom, cy, cx = crop_params(np.random.default_rng(_), 0.3)
        assert 1.0 <= zoom <= 1 / np.sqrt(0.3) + 1e-9
        assert max(abs(cy), abs(cx)) <= (1 - 1 / zoom) / 2 + 1e-9  # the crop lies inside the frame
    seen = []
    for seed in range(10):
        r = np.random.default_rng(seed)
        zoom, cy, cx = crop_params(np.random.default_rng(seed), 0.3)
        out = random_crop(clip, 0.3, r)
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert out.min() >= 100                                # inside the frame: no zero fill at the edges
        row = out[0, 24].astype(float)
        span = (row[-1] - row[0]) / (ramp[24, -1] - ramp[24, 0])
        assert abs(span - 1 / zoom) < 0.05                      # the frame shows 1/zoom of the width
        assert abs(out[1, :, 24].astype(float).mean() - (150 + 100 * cy)) < 3  # frame 2: the same crop's place
        assert abs(row.mean() - (150 + 100 * cx)) < 3
        seen.append(zoom)
    assert max(seen) > 1.3 and min(seen) < 1.15                 # areas drawn over the range


def test_two_views_crop_only_when_asked(few_rows):
    kw = dict(combo="cine:sax", frames=1)
    a, b = two_views(few_rows, rng=np.random.default_rng(3), **kw)
    a1, b1 = two_views(few_rows, rng=np.random.default_rng(3), crop=1.0, **kw)
    assert np.array_equal(a, a1) and np.array_equal(b, b1)   # the default draws exactly as before
    a2, _ = two_views(few_rows, rng=np.random.default_rng(3), crop=0.2, **kw)
    assert not np.allclose(a, a2)


def test_simclr_is_judged_against_ln_2b_minus_1():
    from cmr_ray.eval.simclr import candidates, simclr_verdict

    assert candidates(32) == 63                              # 2·32 views, less the anchor
    hist = lambda *losses: [{"epoch": i + 1, "train/loss": v, "candidates": 63} for i, v in enumerate(losses)]  # noqa: E731
    flat = simclr_verdict(hist(4.10, math.log(63)))          # the plateau of views that all score alike
    assert flat["learning"] == "collapsed" and flat["loss_ratio"] == pytest.approx(1.0) and "ln 63" in flat["reason"]
    assert simclr_verdict(hist(4.0, 0.9 * math.log(63)))["learning"] == "slow"
    assert simclr_verdict(hist(4.0, 0.35 * math.log(63)))["learning"] == "learned"
    # 0.9 × ln 32 is 0.75 × ln 63: the chance level is NT-Xent's ln(2B - 1), not the batch's ln B
    assert simclr_verdict(hist(0.9 * math.log(32)))["learning"] == "learned"


def test_a_dead_head_is_a_fixed_point_at_ln_2b_minus_1_and_batch_norm_revives_it():
    """A projection head whose hidden ReLUs are all off gives every view the same output: the
    NT-Xent loss is exactly ln(2B - 1) and no gradient reaches the tower, so training can never
    leave it (the 5a93339 `make run`'s SimCLR sat at 4.1431 = ln 63 from epoch 8).  With batch
    norm before the ReLU the hidden units are re-centred over the batch, and gradient flows."""
    from cmr_ray.eval.simclr import projection_head

    torch.manual_seed(0)
    b = 8
    z1 = torch.nn.functional.normalize(torch.randn(b, 16), dim=-1).requires_grad_()
    z2 = torch.nn.functional.normalize(torch.randn(b, 16), dim=-1)
    for batch_norm in (False, True):
        head = projection_head(16, batch_norm=batch_norm).train()
        with torch.no_grad():
            head[0].bias.fill_(-10.0)  # every hidden pre-activation negative for unit inputs
        z1.grad = None
        loss = nt_xent(head(z1), head(z2))
        loss.backward()
        if batch_norm:
            assert abs(loss.item() - math.log(2 * b - 1)) > 0.01 and z1.grad.abs().max() > 1e-3
        else:
            assert loss.item() == pytest.approx(math.log(2 * b - 1), abs=1e-6) and z1.grad.abs().max() == 0
