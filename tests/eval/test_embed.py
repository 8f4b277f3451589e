"""embed_split: clips at segment midpoints in [0, 1], eval mode, labels and keys aligned."""
import numpy as np
import torch

from cmr_ray.data.clips import make_clip
from cmr_ray.data.reader import load_split
from cmr_ray.eval.embed import embed_split


class FakeModel(torch.nn.Module):
    """encode_video: per-frame means (so the test can recompute them); encode_text: text length."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.seen_training, self.seen_grad, self.text_calls = [], [], []

    def encode_video(self, x):
        self.seen_training.append(self.training)
        self.seen_grad.append(torch.is_grad_enabled())
        assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        return x.mean(dim=(2, 3)) * self.w

    def encode_text(self, texts):
        self.text_calls.append(list(texts))
        return torch.tensor([[float(len(t)), 1.0] for t in texts])


def test_embed_split_matches_clips(fake_store, cfg):
    model = FakeModel().train()
    emb = embed_split(model, fake_store, cfg, "test", batch_size=4, progress=False)
    rows = [r for r in load_split(fake_store, ["cine_sax", "lge_sax"], "test")]
    kept = [r for r in rows if r["lge_sax"] is not None]
    assert emb.study_keys == [r["study_key"] for r in kept]
    assert emb.skipped == [r["study_key"] for r in rows if r["lge_sax"] is None]
    want = np.stack([make_clip(r, cfg["data"]["views"], 4).mean(axis=(1, 2)) / 255.0 for r in kept])
    assert np.allclose(emb.video, want, atol=1e-5)
    assert emb.text[:, 0].tolist() == [float(len(r["impression"])) for r in kept]
    assert set(model.seen_training) == {False} and set(model.seen_grad) == {False}
    assert model.training  # mode restored
    assert len(model.text_calls[0]) == len(set(emb.impressions))  # each distinct text once
    assert emb.labels["hcm"].tolist() == [float(r["label_hcm"]) for r in kept]
    amyl = emb.labels["amyl"]
    assert np.isnan(amyl).sum() == sum(r["label_amyl"] is None for r in kept) > 0
    assert emb.labels["acdc"].tolist() == [r["label_acdc"] for r in kept]
    # data.sampling reaches the evaluation clips (5 frames of 6 cine phases + 3 LGE slices: 3 + 2 per view)
    pv = cfg.with_overrides({"data.sampling": "per_view", "data.frames": 5})
    got = embed_split(FakeModel(), fake_store, pv, "test", batch_size=4, progress=False).video
    want = np.stack([make_clip(r, cfg["data"]["views"], 5, None, "per_view").mean(axis=(1, 2)) / 255.0 for r in kept])
    uniform = np.stack([make_clip(r, cfg["data"]["views"], 5).mean(axis=(1, 2)) / 255.0 for r in kept])
    assert np.allclose(got, want, atol=1e-5) and not np.allclose(got, uniform, atol=1e-5)


def test_embed_fit_splits_concatenate(fake_store, cfg):
    emb = embed_split(FakeModel(), fake_store, cfg, ("train", "val"), progress=False)
    n_train = len(embed_split(FakeModel(), fake_store, cfg, "train", progress=False))
    assert len(emb) > n_train and emb.video.shape == (len(emb), 4)
    test = embed_split(FakeModel(), fake_store, cfg, "test", progress=False)
    assert not set(emb.patient_keys) & set(test.patient_keys)
