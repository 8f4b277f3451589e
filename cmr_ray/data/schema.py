"""The clip store's schema: one Parquet row per study, every view's frames as uint8.

Columns
-------
study_key      string   salted hash of StudyInstanceUID (no PHI)
patient_key    string   salted hash of PatientID; splits are made per patient
split          string   'train' | 'val' | 'test'
impression     string   de-identified impression text
label_nicm, label_icm, label_amyl, label_hcm   int8, null when unknown
label_acdc     string   NOR | MINF | DCM | HCM | RV, null when unknown
label_<finding> int8    a binary finding (`FINDINGS`: lv_systolic_dysfunction, lv_dilation,
                        lv_hypertrophy, rv_systolic_dysfunction, rv_dilation, lge_present,
                        pericardial_effusion), null when unknown; a labels CSV may carry any
                        subset (the synthetic cohort's come from cmr_ray/synth/findings.yaml)
<slot>         binary   uint8 frames, C order, for each slot in `cmr_ray.views.SLOTS`
                        (cine_sax, cine_2ch, ..., lge_4ch); null when the study lacks it
<slot>_shape   list<int32>  [slices, phases, H, W]: cine SAX is [S, T, H, W], cine LAX
                        [1, T, H, W], LGE SAX [S, 1, H, W], LGE LAX [1, 1, H, W]

Files: STORE/shards/part-*.parquet, STORE/store.json (image_size, schema version, counts),
STORE/manifest.parquet (one row per input file).  A shard is written to a temporary
name and renamed into place, so a half-written shard is never read as valid.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from cmr_ray.views import SLOTS

SCHEMA_VERSION = 2  # 2: label_<finding> columns (a version-1 store is read with them null; prepare does not resume into it)
BINARY_LABELS = ("nicm", "icm", "amyl", "hcm")  # the paper's diagnoses
ACDC_CLASSES = ("NOR", "MINF", "DCM", "HCM", "RV")
# binary findings (issue 20); the same names as cmr_ray/synth/findings.yaml (a test holds them equal)
FINDINGS = ("lv_systolic_dysfunction", "lv_dilation", "lv_hypertrophy", "rv_systolic_dysfunction",
            "rv_dilation", "lge_present", "pericardial_effusion")
FINDING_COLUMNS = tuple(f"label_{n}" for n in FINDINGS)  # may be absent from a store written before them
LABEL_COLUMNS = tuple(f"label_{n}" for n in BINARY_LABELS) + ("label_acdc",) + FINDING_COLUMNS
META_COLUMNS = ("study_key", "patient_key", "split", "impression") + LABEL_COLUMNS


def arrow_schema() -> pa.Schema:
    fields = [
        pa.field("study_key", pa.string(), nullable=False),
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("impression", pa.string(), nullable=False),
    ]
    fields += [pa.field(f"label_{n}", pa.int8()) for n in BINARY_LABELS]
    fields.append(pa.field("label_acdc", pa.string()))
    fields += [pa.field(c, pa.int8()) for c in FINDING_COLUMNS]
    for slot in SLOTS:
        fields.append(pa.field(slot, pa.binary()))
        fields.append(pa.field(f"{slot}_shape", pa.list_(pa.int32())))
    return pa.schema(fields)


def encode_view(frames: np.ndarray) -> tuple[bytes, list[int]]:
    """uint8 array [S, T, H, W] -> (bytes, shape) for a slot column pair."""
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"expected uint8 [S, T, H, W], got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames).tobytes(), [int(d) for d in frames.shape]


def decode_view(data: bytes | None, shape) -> np.ndarray | None:
    if data is None:
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape([int(d) for d in shape])


def readable_columns(cols, names) -> list[str]:
    """`cols` less the finding columns a store's file schema (`names`) lacks: a store written
    before them (schema 1) is read as today, `with_absent_findings` adds them as null."""
    names = set(names)
    return [c for c in cols if c in names or c not in FINDING_COLUMNS]


def with_absent_findings(table: pa.Table, cols) -> pa.Table:
    """`table` with a null int8 column for every finding column of `cols` it lacks."""
    for c in cols:
        if c in FINDING_COLUMNS and c not in table.column_names:
            table = table.append_column(pa.field(c, pa.int8()), pa.nulls(table.num_rows, pa.int8()))
    return table.select(list(cols))


def columns_for(slots, with_meta: bool = True) -> list[str]:
    """Column pruning: only the slots an experiment uses (plus their shapes)."""
    cols = list(META_COLUMNS) if with_meta else []
    for slot in slots:
        cols += [slot, f"{slot}_shape"]
    return cols
