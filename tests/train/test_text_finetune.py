"""The paper preset's text path: a text tower that trains gets gradients, its own learning
rate, and never reads or writes the frozen-text feature cache (tiny local BERT; no Ray)."""
import torch

from cmr_ray.model import ClipLoss, build_model, contrastive_step
from cmr_ray.model import textcache
from cmr_ray.model.ids import impression_id
from cmr_ray.train.loop import make_optimizer
from tests.train.conftest import tiny_train_cfg

TEXTS = ["Normal study.", "Inferior infarct.", "Dilated LV.", "Normal study."]


def _cfg(store, text_model, **over):
    o = {"model.freeze_text": False, "model.text_max_length": 512, "model.head": "relu_linear",
         "train.lr": 1e-3, "train.text_lr": 1e-5}
    o.update(over)
    return tiny_train_cfg(store, text_model, **o)


def test_gradients_reach_the_text_tower_and_the_cache_is_bypassed(tiny_text_model, monkeypatch, tmp_path):
    monkeypatch.setenv("CMR_RAY_CACHE", str(tmp_path / "cache"))

    def no_cache(*a, **k):
        raise AssertionError("the feature cache was used while the text tower trains")

    monkeypatch.setattr(textcache.TextFeatureCache, "for_tower", classmethod(no_cache))
    torch.manual_seed(0)
    model = build_model(_cfg("unused", tiny_text_model))
    assert model.text.training and all(p.requires_grad for p in model.text.parameters())
    opt = make_optimizer(model, _cfg("unused", tiny_text_model))
    before = {k: v.clone() for k, v in model.text.encoder.state_dict().items()}
    ids = torch.tensor([impression_id(t) for t in TEXTS])
    micro = [(torch.rand(4, 4, 32, 32), TEXTS, ids)]
    opt.zero_grad(set_to_none=True)
    contrastive_step(model, ClipLoss(mask_duplicates=True, gather=False), micro)
    grads = [p.grad for p in model.text.encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    opt.step()
    after = model.text.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # evaluation mode too encodes afresh: nothing cached in memory or on disk
    model.eval()
    with torch.no_grad():
        model.encode_text(TEXTS)
    assert model._text_cache == {} and not (tmp_path / "cache").exists()
    assert any(k.startswith("text.") for k in model.trainable_state_dict())  # the tuned text is saved


def test_text_tower_has_its_own_learning_rate(tiny_text_model):
    torch.manual_seed(0)
    cfg = _cfg("unused", tiny_text_model)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg)
    text_ids = {id(p) for p in model.text.parameters()}
    lrs = {}
    for g in opt.param_groups:
        for p in g["params"]:
            lrs[id(p)] = g["lr"]
    assert {lrs[i] for i in text_ids} == {1e-5}
    assert {lr for i, lr in lrs.items() if i not in text_ids} == {1e-3}
    assert opt.param_groups[0]["lr"] == 1e-3  # what train/lr reports
    # text_lr 0: the text tower follows train.lr
    cfg0 = _cfg("unused", tiny_text_model, **{"train.text_lr": 0.0})
    assert {g["lr"] for g in make_optimizer(build_model(cfg0), cfg0).param_groups} == {1e-3}


def test_frozen_text_keeps_two_groups_and_the_cache(tiny_text_model):
    cfg = tiny_train_cfg("unused", tiny_text_model)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg)
    assert len(opt.param_groups) == 2  # as before: old checkpoints' optimizer state still loads
    model.encode_text(TEXTS[:2])
    assert set(model._text_cache) == set(TEXTS[:2])
