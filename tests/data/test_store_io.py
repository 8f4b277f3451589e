"""Store plumbing without Ray: salt handling, atomic writes, the reader, the tables."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cmr_ray.data import keys, storefs
from cmr_ray.data.manifest import file_row, summary_text
from cmr_ray.data.reader import StoreError, load_split, store_info
from cmr_ray.data.schema import arrow_schema, decode_view, encode_view
from cmr_ray.data.tables import TableError, load_labels, load_reports


def test_salt_created_once_in_store_when_env_unset(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.SALT_ENV, raising=False)
    fs, root = storefs.open_store(tmp_path / "store")
    a = keys.load_salt(fs, root)
    b = keys.load_salt(fs, root)
    assert a == b and len(a) >= 32
    assert (tmp_path / "store" / ".salt").read_text() == a
    other_fs, other_root = storefs.open_store(tmp_path / "other")
    assert keys.load_salt(other_fs, other_root) != a  # no default salt ships with the code
    with pytest.raises(ValueError, match="no salt"):
        keys.load_salt(*storefs.open_store(tmp_path / "third"), create=False)


def test_env_salt_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(keys.SALT_ENV, "from-env")
    assert keys.load_salt(*storefs.open_store(tmp_path)) == "from-env"
    assert not (tmp_path / ".salt").exists()
    assert keys.salt_fingerprint("from-env") != keys.salt_fingerprint("other")
    assert "from-env" not in keys.salt_fingerprint("from-env")


def test_atomic_write_and_listing_skip_temp_files(tmp_path):
    fs, root = storefs.open_store(tmp_path)
    storefs.write_bytes_atomic(fs, storefs.join(root, "a.parquet"), b"x")
    (tmp_path / f"b.parquet{storefs.TMP_MARK}dead").write_bytes(b"half")
    assert [p.rsplit("/", 1)[1] for p in storefs.list_files(fs, root, ".parquet")] == ["a.parquet"]
    assert storefs.remove_temp_files(fs, root) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]


def _row(key, split, seed):
    rng = np.random.default_rng(seed)
    row = {"study_key": key, "patient_key": "p" + key, "split": split, "impression": f"imp {key}",
           "label_nicm": 1, "label_icm": None, "label_amyl": 0, "label_hcm": 0, "label_acdc": "DCM"}
    row["cine_sax"], row["cine_sax_shape"] = encode_view(rng.integers(0, 255, (2, 3, 8, 8), dtype=np.uint8))
    row["lge_sax"], row["lge_sax_shape"] = encode_view(rng.integers(0, 255, (2, 1, 8, 8), dtype=np.uint8))
    return row


def test_reader_prunes_columns_and_filters_split(tmp_path):
    (tmp_path / "shards").mkdir()
    rows = [_row(f"s{i}", ["train", "val", "test"][i % 3], i) for i in range(6)]
    pq.write_table(pa.Table.from_pylist(rows[:3], schema=arrow_schema()), tmp_path / "shards" / "part-a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:], schema=arrow_schema()), tmp_path / "shards" / "part-b.parquet")
    (tmp_path / "shards" / f"part-c.parquet{storefs.TMP_MARK}x").write_bytes(b"garbage")
    (tmp_path / "store.json").write_text(json.dumps({"schema_version": 1}))
    got = load_split(tmp_path, ["cine_sax"], "train")
    assert [r["study_key"] for r in got] == ["s0", "s3"]
    assert "lge_sax" not in got[0] and "cine_4ch" not in got[0]
    arr = decode_view(got[0]["cine_sax"], got[0]["cine_sax_shape"])
    assert np.array_equal(arr, decode_view(rows[0]["cine_sax"], rows[0]["cine_sax_shape"]))
    assert len(load_split(tmp_path, ["lge_sax"])) == 6
    with pytest.raises(StoreError, match="unknown slot"):
        load_split(tmp_path, ["cine_5ch"])
    with pytest.raises(StoreError, match="not a clip store"):
        store_info(tmp_path / "nothing")


def test_reports_table_decodes_each_field(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes("accession_number,report_text\nA1,\"IMPRESSION: caf\u00e9 ok\"\n".encode("utf-8")
                  + "A2,\"IMPRESSION: na\u00efve\"\n".encode("cp1252") + b"A1,dup\n")
    r = load_reports(p)
    assert r["A1"] == ["IMPRESSION: caf\u00e9 ok", "dup"]
    assert r["A2"] == ["IMPRESSION: na\u00efve"]
    bad = tmp_path / "bad.csv"
    bad.write_text("acc,text\n1,2\n")
    with pytest.raises(TableError, match="missing column 'accession_number'"):
        load_reports(bad)


def test_labels_table(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("accession_number,nicm,icm,amyl,hcm,acdc,ef\nA1,1,0,,0,dcm,35\nA2,x,1,0,0,ZZZ,60\n")
    lab = load_labels(p)
    assert lab["A1"] == {"label_nicm": 1, "label_icm": 0, "label_amyl": None, "label_hcm": 0, "label_acdc": "DCM"}
    assert lab["A2"]["label_nicm"] is None and lab["A2"]["label_acdc"] is None


def test_summary_counts_add_up():
    rows = [file_row("a", "used"), file_row("b", "failed", "empty file (0 bytes)"),
            file_row("c", "ignored", "study excluded: no report")]
    studies = [{"status": "used", "reason": ""}, {"status": "excluded", "reason": "no report"}]
    text = summary_text(rows, studies)
    assert "excluded: no report" in text and "failed: empty file" in text
    lines = text.splitlines()
    files_total = lines[lines.index("files") + 4]  # used, failed, ignored, total
    assert files_total.split() == ["total", "3"]
    assert lines[lines.index("studies") + 3].split() == ["total", "2"]


def _registry(path, named: dict):
    """studies.parquet with one row per study: {study_key: (status, shard)}."""
    from cmr_ray.data.manifest import STUDY_SCHEMA

    rows = [dict(study_key=k, fingerprint="f", status=st, reason="", shard=sh, split="train", accession_key="a")
            for k, (st, sh) in named.items()]
    pq.write_table(pa.Table.from_pylist(rows, schema=STUDY_SCHEMA), path / "studies.parquet")


def test_reader_reads_only_the_shards_the_registry_names(tmp_path):
    from cmr_ray.data.reader import shard_paths

    (tmp_path / "shards").mkdir()
    rows = [_row(f"s{i}", "train", i) for i in range(5)]
    for name, part in (("part-a", rows[:2]), ("part-b", rows[2:3]), ("part-orphan", rows[3:4]), ("stray", rows[4:])):
        pq.write_table(pa.Table.from_pylist(part, schema=arrow_schema()), tmp_path / "shards" / f"{name}.parquet")
    (tmp_path / "store.json").write_text(json.dumps({"schema_version": 1, "counts": {"studies": 3}}))
    _registry(tmp_path, {"s0": ("used", "part-a.parquet"), "s1": ("used", "part-a.parquet"),
                         "s2": ("used", "part-b.parquet"), "s9": ("excluded", None),
                         "s8": ("failed", "part-orphan.parquet")})  # not used: its shard is not read
    fs, paths = shard_paths(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["part-a.parquet", "part-b.parquet"]
    assert [r["study_key"] for r in load_split(tmp_path, ["cine_sax"], "train")] == ["s0", "s1", "s2"]

    (tmp_path / "shards" / "part-b.parquet").unlink()
    with pytest.raises(StoreError, match=r"names 1 shard\(s\) missing from shards/, e.g. part-b.parquet"):
        load_split(tmp_path, ["cine_sax"])
    (tmp_path / "studies.parquet").unlink()  # a prepared store (store.json has counts) needs its registry
    with pytest.raises(StoreError, match="studies.parquet is missing"):
        shard_paths(tmp_path)
    (tmp_path / "studies.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="unreadable study registry"):
        shard_paths(tmp_path)
    _registry(tmp_path, {"s0": ("used", "../store.json")})
    with pytest.raises(StoreError, match="not a file name under shards/"):
        shard_paths(tmp_path)


def test_summary_names_uids_instead_of_counting_them():
    # issue 16 (5): a UID is no number: registered ones by name, others as 'UID'
    from cmr_ray.data.manifest import reason_kind

    assert reason_kind("modality missing and SOP class 1.2.840.10008.5.1.4.1.1.7 is not an MR image", n=200) == (
        "modality missing and SOP class Secondary Capture Image Storage is not an MR image")
    assert reason_kind("duplicate SOPInstanceUID of st/1.3.12.2.1107.5.2.43.66112.20161014092636634.dcm") == (
        "duplicate SOPInstanceUID of st/UID.dcm")
    assert reason_kind("truncated: pixel data needs 5120 bytes, file has 100") == (
        "truncated: pixel data needs N bytes, file has N")
