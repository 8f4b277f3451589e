"""Bad input through `prepare` (issue 8): every file gets a row with a specific reason, the run
finishes, and the good studies' clips are byte-identical to a run without the bad input."""
from __future__ import annotations

import csv
import io
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from cmr_ray.config import load_config
from cmr_ray.data.prepare import prepare
from cmr_ray.data.reader import load_split
from cmr_ray.views import SLOTS

from .helpers import write_reports, write_study

pytestmark = pytest.mark.integration
CFG = load_config(overrides={"data.image_size": 16})


def missing_phase(ds, path, seq, view, s, t):
    return False if (seq, view, s, t) == ("cine", "sax", 1, 2) else None


def odd_size(ds, path, seq, view, s, t):
    if (seq, view, s) == ("lge", "sax", 1):
        ds.Rows = ds.Columns = 20
        ds.PixelData = np.full((20, 20), 7, np.uint16).tobytes()


def same_instance_number(ds, path, *a):
    ds.InstanceNumber = 1


def undecodable(ds, path, seq, view, s, t):
    if (seq, view, s) == ("lge", "sax", 0):
        ds.file_meta.TransferSyntaxUID = RLELossless
        ds.PixelData = encapsulate([b"\x05\x00\x00\x00" + b"\xff" * 60 + b"junk" * 40])
        ds["PixelData"].VR = "OB"


def no_meta(ds, path, *a):
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return True


def manifest_of(store):
    return {r["path"]: r for r in pq.read_table(os.path.join(store, "manifest.parquet")).to_pylist()}


def in_study(rows, idx, series=None):
    pre = f"study{idx:03d}/" + (f"series{series:02d}/" if series else "")
    return {p: r for p, r in rows.items() if p.startswith(pre)}


def test_bad_input(tmp_path, ray_module):
    from tests.dicom.faults import FAULTS

    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    phis = [write_study(clean, i) for i in range(3)]
    write_reports(tmp_path / "clean.csv", phis)
    ref = prepare(clean, tmp_path / "clean.csv", tmp_path / "store_clean", cfg=CFG, num_cpus=2, progress=False)
    assert ref.studies_used == 3
    shutil.copytree(clean, dirty)

    loose = {}
    (dirty / "bad").mkdir()
    for name, (builder, reason, stage) in FAULTS.items():
        if stage == "header":
            builder(dirty / "bad" / f"{name}.dcm")
            loose[f"bad/{name}.dcm"] = reason
    hooks = {10: missing_phase, 11: odd_size, 12: same_instance_number, 13: undecodable, 14: no_meta}
    for idx, hook in hooks.items():
        phis.append(write_study(dirty, idx, hook=hook))
    for idx in (15, 16, 17, 18):
        phis.append(write_study(dirty, idx))
    write_reports(tmp_path / "dirty.csv", phis[:8])  # the good studies' reports as in the clean run
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([phis[8]["accession"], "IMPRESSION: Normal."])
    w.writerow([phis[8]["accession"], "IMPRESSION: Severe dilated cardiomyopathy."])  # 15: two reports
    w.writerow([phis[10]["accession"], "FINDINGS: normal biventricular size, nothing more."])  # 17
    (tmp_path / "dirty.csv").write_bytes(
        (tmp_path / "dirty.csv").read_bytes() + buf.getvalue().encode("utf-8")
        + f'{phis[11]["accession"]},"IMPRESSION: Caf\u00e9-au-lait spots; normal LV."\n'.encode("cp1252"))  # 18

    s = prepare(dirty, tmp_path / "dirty.csv", tmp_path / "store", cfg=CFG, num_cpus=2, progress=False)
    rows = manifest_of(tmp_path / "store")
    on_disk = sorted(os.path.relpath(os.path.join(r, f), dirty).replace(os.sep, "/")
                     for r, _, fs in os.walk(dirty) for f in fs)
    assert sorted(rows) == on_disk and s.input_files == len(on_disk) == sum(s.files.values())
    assert all(r["reason"] for r in rows.values() if r["status"] != "used")

    for path, reason in loose.items():
        assert rows[path]["status"] == "failed" and rows[path]["reason"].startswith(reason), (path, rows[path])

    cine_sax = in_study(rows, 10, 1)
    assert len(cine_sax) == 14 and all(r["status"] == "failed" and "missing phase" in r["reason"] for r in cine_sax.values())
    odd = rows["study011/series03/002.dcm"]
    assert odd["status"] == "failed" and "Rows x Columns 20x20" in odd["reason"]
    assert all(r["status"] == "used" for r in in_study(rows, 12).values())
    bad_px = rows["study013/series03/001.dcm"]
    assert bad_px["status"] == "failed" and bad_px["reason"].startswith("cannot decode pixel data")
    assert all(r["status"] == "ignored" and "series not decodable" in r["reason"]
               for p, r in in_study(rows, 13, 3).items() if p != "study013/series03/001.dcm")
    assert all(r["status"] == "used" for r in in_study(rows, 14).values())
    for idx, why in ((15, "different reports"), (16, "no report"), (17, "no impression")):
        assert all(r["status"] == "ignored" and why in r["reason"] for r in in_study(rows, idx).values())
    assert s.studies_used == 3 + 5 + 1
    assert sorted(s.studies_excluded) == ["2 different reports for one accession number", "no report",
                                          "report has no impression"]

    got = {r["study_key"]: r for r in load_split(tmp_path / "store", SLOTS)}
    want = {r["study_key"]: r for r in load_split(tmp_path / "store_clean", SLOTS)}
    for k, r in want.items():
        assert got[k] == r  # the good studies: byte-identical, with or without the bad input
    by_imp = {r["impression"]: r for r in got.values()}
    cafe = next(r for i, r in by_imp.items() if "Caf\u00e9-au-lait" in i)
    assert cafe["cine_sax"] is not None
    shapes = {k: (r["cine_sax_shape"], r["lge_sax_shape"]) for k, r in got.items() if k not in want}
    assert sorted(shapes.values(), key=str).count(([3, 5, 16, 16], [2, 1, 16, 16])) == 1  # study 11
    assert sum(1 for c, lge in shapes.values() if c is None) == 1   # study 10 lost its cine SAX
    assert sum(1 for c, lge in shapes.values() if lge is None) == 1  # study 13 lost its LGE SAX
