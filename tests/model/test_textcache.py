"""The on-disk cache of frozen text features: same features back, keyed by tower, no text on disk."""
from __future__ import annotations

import torch

from cmr_ray.model.textcache import TextFeatureCache, tower_id

TEXTS = ["Normal left ventricular size and function.", "Inferior wall infarct with late enhancement."]


def _model(cfg):
    from cmr_ray.model import build_model

    torch.manual_seed(0)
    return build_model(cfg)


def test_a_second_model_reads_the_features_instead_of_encoding(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path))
    first = _model(tiny_cfg)
    want = first.text_features(TEXTS)
    files = sorted(p for p in tmp_path.rglob("*.npy"))
    assert len(files) == len(TEXTS)

    second = _model(tiny_cfg)
    calls = []
    second.text.register_forward_hook(lambda *a: calls.append(1))
    got = second.text_features(TEXTS)
    assert calls == [], "the text tower ran although every impression was cached"
    torch.testing.assert_close(got, want)
    for f in files:  # names are hashes; contents are floats, never the report text
        assert not any(w.lower() in f.name.lower() for w in ("normal", "infarct"))
        assert b"Normal" not in f.read_bytes() and b"infarct" not in f.read_bytes()


def test_a_different_tower_does_not_share_features(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path))
    a = _model(tiny_cfg)
    b = _model(tiny_cfg.replace("model.text_max_length", 16))
    assert tower_id(a.text) != tower_id(b.text)
    c = _model(tiny_cfg)
    with torch.no_grad():
        c.text.encoder.embeddings.word_embeddings.weight.add_(0.5)  # other weights, same name and limit
    assert tower_id(c.text) != tower_id(a.text)


def test_an_unreadable_entry_is_encoded_again_and_rewritten(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path))
    want = _model(tiny_cfg).text_features(TEXTS)
    for f in tmp_path.rglob("*.npy"):
        f.write_bytes(b"garbage")
    got = _model(tiny_cfg).text_features(TEXTS)
    torch.testing.assert_close(got, want)
    cache = TextFeatureCache.for_tower(_model(tiny_cfg).text)
    assert set(cache.get(TEXTS)) == set(TEXTS)


def test_switched_off_by_env(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path))
    monkeypatch.setenv("CMR_RAY_TEXT_CACHE", "0")
    _model(tiny_cfg).text_features(TEXTS)
    assert not list(tmp_path.rglob("*.npy"))
