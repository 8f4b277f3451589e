"""A tiny fake clip store (pyarrow, per cmr_ray/data/schema.py) and a tiny config."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmr_ray.config import load_config
from cmr_ray.data.schema import ACDC_CLASSES, arrow_schema, encode_view
from cmr_ray.views import SLOTS

SIZE = 16
IMPRESSIONS = {
    "NOR": "Normal left ventricular size and function.",
    "MINF": "Inferior wall infarct with subendocardial scar.",
    "DCM": "Dilated left ventricle with reduced ejection fraction.",
    "HCM": "Asymmetric septal hypertrophy.",
    "RV": "Dilated right ventricle.",
}


def fake_rows(n: int, seed: int = 0) -> list[dict]:
    """Studies whose frames carry the class (a bright square whose place depends on it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        cls = ACDC_CLASSES[i % 5]
        c = ACDC_CLASSES.index(cls)
        split = "test" if i % 3 == 0 else "val" if i % 10 == 1 else "train"
        cine = rng.integers(0, 40, size=(3, 6, SIZE, SIZE)).astype(np.uint8)
        cine[:, :, 2 * c:2 * c + 4, 3:9] = 220
        lge = rng.integers(0, 40, size=(3, 1, SIZE, SIZE)).astype(np.uint8)
        lge[:, :, 9:13, 2 * c:2 * c + 4] = 250
        row = {s: None for s in SLOTS}
        row.update({f"{s}_shape": None for s in SLOTS})
        for slot, arr in (("cine_sax", cine), ("lge_sax", lge)):
            row[slot], row[f"{slot}_shape"] = encode_view(arr)
        if i == 5:  # one study lacks LGE: it is left out of embedding, not a crash
            row["lge_sax"] = row["lge_sax_shape"] = None
        row.update(
            study_key=f"s{i:04d}", patient_key=f"p{i:04d}", split=split,
            impression=f"{IMPRESSIONS[cls]} Study {i % 4}.",
            label_nicm=int(cls == "DCM"), label_icm=int(cls == "MINF"),
            label_amyl=None if i % 4 == 0 else int(i % 8 == 1), label_hcm=int(cls == "HCM"),
            label_acdc=cls,
        )
        rows.append(row)
    return rows


def write_store(path, rows) -> str:
    (path / "shards").mkdir(parents=True)
    table = pa.Table.from_pylist(rows, schema=arrow_schema())
    pq.write_table(table, path / "shards" / "part-00000.parquet")
    (path / "store.json").write_text(json.dumps({"image_size": SIZE, "schema_version": 1, "studies": len(rows)}))
    return str(path)


@pytest.fixture(scope="session")
def fake_store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store"), fake_rows(90))


@pytest.fixture
def few_rows():
    return fake_rows(3)


def tiny_cfg(**extra):
    over = {
        "data.views": "cine:sax|lge:sax", "data.frames": 4, "data.image_size": SIZE,
        "model.hidden_size": 16, "model.layers": 1, "model.heads": 2, "model.patch_size": 8,
        "model.embed_dim": 16, "train.epochs": 1, "train.batch_size": 16,
        "eval.probes": ["nicm", "hcm", "acdc"], "eval.few_shot": [1, 2], "eval.few_shot_seeds": 2,
        "eval.chunk_size": 7,
    }
    over.update(extra)
    return load_config(None, over)


@pytest.fixture
def cfg():
    return tiny_cfg()
