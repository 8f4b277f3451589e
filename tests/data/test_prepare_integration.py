"""`prepare` end to end on a real local Ray (2 CPUs) with small DICOM studies written here."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from cmr_ray.config import load_config
from cmr_ray.data.prepare import prepare
from cmr_ray.data.reader import load_split, read_split, store_info
from cmr_ray.data.schema import decode_view
from cmr_ray.views import SLOTS

from .helpers import store_file_text, write_reports, write_study

pytestmark = pytest.mark.integration
CFG = load_config(overrides={"data.image_size": 16})


def manifest(store):
    return pq.read_table(os.path.join(store, "manifest.parquet")).to_pylist()


def input_files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d).replace(os.sep, "/") for r, _, fs in os.walk(d) for f in fs)


def all_rows(store):
    return {r["study_key"]: r for r in load_split(store, SLOTS)}


def phi_strings(phis):
    out = set()
    for p in phis:
        for v in p.values():
            out.add(v)
            out.update(part for part in v.split("^") if len(part) > 3)
    return sorted(out)


def assert_no_phi(store, phis):
    values = phi_strings(phis)
    for root, _, files in os.walk(store):
        for f in files:
            text = store_file_text(os.path.join(root, f))
            for v in values:
                assert v not in text, f"PHI value {v!r} found in {f}"


def test_prepare_rerun_and_add_studies(tmp_path, ray_module):
    dicom, store = tmp_path / "dicom", str(tmp_path / "store")
    phis = [write_study(dicom, i) for i in range(4)]
    (dicom / "notes.txt").write_text("not an image")
    write_reports(tmp_path / "reports.csv", phis[:3])  # study 3 has no report

    s = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert (s.studies_used, s.studies_written, s.studies_excluded) == (3, 3, {"no report": 1})
    rows = manifest(store)
    assert [r["path"] for r in rows] == input_files(dicom)
    assert sum(s.files.values()) == len(rows) == s.input_files
    assert list(s.phases) == ["ray", "index", "group", "plan+write"]  # Ray's start apart from the index
    assert 0 <= sum(s.phases.values()) <= s.seconds and f"ray {s.phases['ray']:.1f}" in s.text
    by = {r["path"]: r for r in rows}
    assert by["notes.txt"]["status"] == "failed" and "not a DICOM file" in by["notes.txt"]["reason"]
    assert all(by[p]["status"] == "ignored" and "no report" in by[p]["reason"] for p in by if p.startswith("study003"))
    assert {(r["sequence"], r["view"]) for r in rows if r["status"] == "used"} == {("cine", "sax"), ("cine", "4ch"), ("lge", "sax")}

    data = all_rows(store)
    assert len(data) == 3
    one = next(iter(data.values()))
    assert one["cine_sax_shape"] == [3, 5, 16, 16] and one["lge_sax_shape"] == [3, 1, 16, 16]
    assert one["cine_2ch"] is None
    assert "Normal LV size" in one["impression"] and "Zyxw" not in one["impression"]
    info = store_info(store)
    assert info["image_size"] == 16 and info["counts"]["studies"] == 3
    assert_no_phi(store, phis)
    ds = read_split(store, ["cine_sax"], None)
    assert sorted(ds.to_pandas()["study_key"]) == sorted(data)
    seen = []
    for split in ("train", "val", "test"):
        got = read_split(store, ["cine_sax"], split).take_all()
        assert sorted(r["study_key"] for r in got) == [r["study_key"] for r in load_split(store, ["cine_sax"], split)]
        assert all(r["split"] == split and "lge_sax" not in r and r["cine_sax"] for r in got)
        seen += [r["study_key"] for r in got]
    assert sorted(seen) == sorted(data)

    shards = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store" / "shards").iterdir()}
    again = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert again.studies_written == 0 and again.studies_used == 3
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store" / "shards").iterdir()} == shards
    assert manifest(store) == rows

    phis += [write_study(dicom, i) for i in (4, 5)]
    write_reports(tmp_path / "reports.csv", phis)  # now study 3 has a report too
    more = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert more.studies_written == 3 and more.studies_used == 6  # 4, 5 and the re-reported 3
    now = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store" / "shards").iterdir()}
    assert {k: v for k, v in now.items() if k in shards} == shards  # old shards untouched
    new_data = all_rows(store)
    for k, r in data.items():
        assert new_data[k]["cine_sax"] == r["cine_sax"]
    assert [r["path"] for r in manifest(store)] == input_files(dicom)
    assert_no_phi(store, phis)


def test_interrupted_write_is_repaired(tmp_path, ray_module):
    dicom, store = tmp_path / "dicom", tmp_path / "store"
    phis = [write_study(dicom, i, views=(("cine", "sax"),)) for i in range(6)]
    write_reports(tmp_path / "reports.csv", phis)
    prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    ref = all_rows(store)
    shards = sorted((store / "shards").iterdir())
    assert len(ref) == 6 and len(shards) >= 2
    # a crash mid-write leaves: a temp file, an uncommitted shard, and (worst case) a
    # committed shard cut short
    (store / "shards" / f"{shards[0].name}.tmp-1234abcd").write_bytes(shards[0].read_bytes()[:100])
    shutil.copy(shards[0], store / "shards" / "part-uncommitted.parquet")
    shards[1].write_bytes(shards[1].read_bytes()[:200])
    with pytest.raises(Exception):
        load_split(store, ["cine_sax"])
    s = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert s.studies_used == 6 and 0 < s.studies_written < 6  # only the lost studies redone
    names = sorted(p.name for p in (store / "shards").iterdir())
    assert "part-uncommitted.parquet" not in names and not any(".tmp-" in n for n in names)
    got = all_rows(store)
    assert sorted(got) == sorted(ref)
    assert all(got[k]["cine_sax"] == ref[k]["cine_sax"] for k in ref)
    keys = [r["study_key"] for r in load_split(store, ["cine_sax"])]
    assert len(keys) == len(set(keys)) == 6


def test_resume_keeps_committed_shards_and_decodes_only_the_rest(tmp_path, ray_module, monkeypatch):
    """Shard-level resume (issue 16, item 6): a run that dies after its shards were written
    keeps, on the next run, every shard it committed (a journal entry) and whose file is
    whole; a shard it wrote but never committed, and a committed shard cut short, are
    decoded again, and the rerun says how many of each."""
    import cmr_ray.data.prepare as prep

    dicom, store = tmp_path / "dicom", tmp_path / "store"
    phis = [write_study(dicom, i, views=(("cine", "sax"),)) for i in range(6)]
    write_reports(tmp_path / "reports.csv", phis)
    prepare(dicom, tmp_path / "reports.csv", tmp_path / "ref", cfg=CFG, num_cpus=2, progress=False)
    ref = all_rows(tmp_path / "ref")

    def die(*a, **k):  # the run is killed after every shard is written, before the registry
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(prep, "write_table", die)
        with pytest.raises(KeyboardInterrupt):
            prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert not (store / "studies.parquet").exists()
    journal = sorted((store / "journal").glob("*.json"))
    entries = [json.loads(p.read_text()) for p in journal]
    shard_of = {r["study_key"]: r["shard"] for e in entries for r in e["studies"]}
    assert len(journal) >= 4 and len(set(shard_of.values())) >= 4, journal  # one study per shard here
    assert all(e["files"] and all(f["size"] for f in e["files"]) for e in entries)
    # the last two shards were written but their commit never happened; one committed shard is cut short
    for p in journal[-2:]:
        p.unlink()
    lost = {r["shard"] for e in entries[-2:] for r in e["studies"]}
    cut = entries[0]["studies"][0]["shard"]
    data = (store / "shards" / cut).read_bytes()
    (store / "shards" / cut).write_bytes(data[: len(data) // 2])
    kept = {s for e in entries[1:-2] for s in {r["shard"] for r in e["studies"]}}
    redo = [k for k, sh in shard_of.items() if sh in lost | {cut}]

    s = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert (s.shards_reused, s.studies_reused) == (len(kept), 6 - len(redo))
    assert (s.shards_written, s.studies_written, s.studies_used) == (len(lost) + 1, len(redo), 6)
    assert (f"resumed an interrupted run: kept the {len(kept)} shard(s) ({6 - len(redo)} studies) it had "
            f"committed; decoded {s.shards_written} shard(s) ({len(redo)} studies) in this run") in s.text
    assert not list((store / "journal").iterdir()), "the journal is folded into the registry and cleared"
    names = {p.name for p in (store / "shards").iterdir()}
    assert kept <= names and not any(".tmp-" in n for n in names)
    got = all_rows(store)
    assert sorted(got) == sorted(ref) and all(got[k] == ref[k] for k in ref)  # as an uninterrupted run
    assert [r["path"] for r in manifest(store)] == input_files(dicom)
    assert manifest(store) == manifest(tmp_path / "ref")
    again = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert (again.studies_written, again.shards_reused, again.studies_used) == (0, 0, 6)
    assert "resumed" not in again.text


def test_changed_study_is_rewritten_once(tmp_path, ray_module):
    dicom, store = tmp_path / "dicom", tmp_path / "store"
    phis = [write_study(dicom, i, views=(("cine", "sax"),)) for i in range(3)]
    write_reports(tmp_path / "reports.csv", phis)
    prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    before = all_rows(store)
    write_study(dicom, 1, views=(("cine", "sax"), ("cine", "4ch")))  # study 1 gains a series
    s = prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    assert s.studies_written == 1
    after = all_rows(store)
    assert sorted(after) == sorted(before)
    changed = [k for k in after if after[k]["cine_4ch"] is not None]
    assert len(changed) == 1
    keys = [r["study_key"] for r in load_split(store, ["cine_sax"])]
    assert len(keys) == len(set(keys)) == 3


def test_bound_settings_and_salt_are_checked(tmp_path, ray_module, monkeypatch):
    from cmr_ray.data.prepare import PrepareError

    dicom, store = tmp_path / "dicom", tmp_path / "store"
    write_reports(tmp_path / "reports.csv", [write_study(dicom, 0, views=(("cine", "4ch"),))])
    prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    other = load_config(overrides={"data.image_size": 32})
    with pytest.raises(PrepareError, match="data.image_size=16"):
        prepare(dicom, tmp_path / "reports.csv", store, cfg=other, num_cpus=2, progress=False)
    monkeypatch.setenv("CMR_RAY_SALT", "another-salt")
    with pytest.raises(PrepareError, match="salt differs"):
        prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    (dicom / "study000").rename(dicom / "PID0000X")  # a folder named after the patient ID
    s = prepare(dicom, tmp_path / "reports.csv", tmp_path / "other", cfg=CFG, num_cpus=2, progress=False)
    assert not s.ok and "name the study's patient ID (PHI" in s.text  # left out, not the run refused
    manifest = (tmp_path / "other" / "manifest.parquet").read_bytes()
    assert b"PID0000X" not in manifest and b"[patient ID]/" in manifest


def test_decoded_pixels_match_source(tmp_path, ray_module):
    """The stored cine SAX is the source pixels through to_uint8, slices ordered by position."""
    import pydicom

    from cmr_ray.dicom.pixels import to_uint8

    dicom, store = tmp_path / "dicom", tmp_path / "store"
    write_reports(tmp_path / "reports.csv", [write_study(dicom, 7, views=(("cine", "sax"),))])
    prepare(dicom, tmp_path / "reports.csv", store, cfg=CFG, num_cpus=2, progress=False)
    (row,) = load_split(store, ["cine_sax"])
    got = decode_view(row["cine_sax"], row["cine_sax_shape"])
    files = sorted((dicom / "study007" / "series01").iterdir())
    vol = np.stack([pydicom.dcmread(f).pixel_array.astype(np.float32) for f in files]).reshape(3, 5, 24, 24)
    assert np.array_equal(got, to_uint8(vol, 16, tuple(CFG["data"]["clip_percentiles"])))
