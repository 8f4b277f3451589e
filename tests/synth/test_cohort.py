"""The cohort's files: determinism, CSVs, reports, PHI ledger, the writer and the CLI."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from cmr_ray.data.schema import ACDC_CLASSES, BINARY_LABELS
from cmr_ray.synth import generate_cohort
from cmr_ray.synth.dicomio import MR_IMAGE, SeriesWriter, _file_meta, _set_pixels, image_values
from cmr_ray.synth.geometry import centred_plane

IMPRESSION = re.compile(r"^(IMPRESSION:?|Impression:)\s*$", re.M)
EF = re.compile(r"(?:EF|ejection fraction(?: of)?)\s*(\d{1,2})%")


def _hashes(root):
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_same_seed_same_bytes_whatever_the_workers(cohort, tmp_path):
    out, summary = cohort
    again = generate_cohort(tmp_path / "again", studies=8, seed=8, workers=1, progress=False)
    assert again == summary
    labels = _rows(out / "labels.csv")
    assert any(r["enhanced"] == "1" for r in labels) and any(r["compression"] for r in labels)
    a, b = _hashes(out), _hashes(tmp_path / "again")
    assert len(a) > 8 * 10 and a == b
    other = generate_cohort(tmp_path / "other", studies=1, seed=9, workers=1, progress=False)
    c = _hashes(tmp_path / "other")
    assert other["files"] > 0 and c["labels.csv"] != a["labels.csv"]
    assert not set(c.values()) & set(a.values())  # another seed shares no file


def test_rerun_is_a_no_op_and_a_different_cohort_is_refused(cohort):
    out, summary = cohort
    before = _hashes(out)
    assert generate_cohort(out, studies=8, seed=8, progress=False) == summary
    assert _hashes(out) == before
    with pytest.raises(FileExistsError, match="different cohort"):
        generate_cohort(out, studies=9, seed=8, progress=False)


def test_a_cohort_json_written_before_the_rename_is_the_same_cohort(cohort, tmp_path):
    """cohort.json said `preset` before the acquisition protocol's key became `protocol`: such a
    cohort (the same bytes) is reused, not refused as different, and still compared by it."""
    import shutil

    out, summary = cohort
    assert summary["protocol"] == "small" and "preset" not in summary
    old = tmp_path / "old"
    shutil.copytree(out, old)
    marker = json.loads((old / "cohort.json").read_text())
    marker["preset"] = marker.pop("protocol")
    (old / "cohort.json").write_text(json.dumps(marker))
    before = _hashes(old)
    assert generate_cohort(old, studies=8, seed=8, progress=False) == summary
    assert _hashes(old) == before
    with pytest.raises(FileExistsError, match="different cohort"):
        generate_cohort(old, studies=8, seed=8, protocol="paper", progress=False)


def test_labels_reports_and_phi_agree(cohort):
    out, summary = cohort
    labels, reports = _rows(out / "labels.csv"), _rows(out / "reports.csv")
    phi = json.loads((out / "phi.json").read_text())
    assert [r["accession_number"] for r in labels] == [r["accession_number"] for r in reports]
    assert len(labels) == 8 and len({r["accession_number"] for r in labels}) == 8
    for lab, rep, ph in zip(labels, reports, phi["studies"]):
        assert lab["acdc"] in ACDC_CLASSES and all(lab[k] in ("0", "1") for k in BINARY_LABELS)
        text = rep["report_text"]
        m = IMPRESSION.search(text)
        assert m, text
        impression = text[m.end():]
        assert re.match(r"\s*1[.)] ", impression)
        assert int(EF.search(impression).group(1)) == int(lab["ef"])
        assert int(EF.search(text[:m.start()]).group(1)) == int(lab["ef"])
        if lab["lge_pattern"] != "none":
            assert "late gadolinium enhancement" in text.lower()
        assert ph["accession_number"] == lab["accession_number"]
        for mention in ph["report_mentions"]:
            assert mention in text and mention in phi["values"]
        study = sorted((out / lab["study_dir"]).rglob("*.dcm"))
        assert len(study) == int(lab["n_files"])
        ds = pydicom.dcmread(study[0], stop_before_pixels=True)
        for v in (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber, ds.InstitutionName, ds.StudyDate):
            assert v in phi["values"]
    assert summary["files"] == sum(int(r["n_files"]) for r in labels)


def test_some_reports_name_the_patient():
    """Across a larger sample (reports only, no files) names and dates do show up."""
    from cmr_ray.synth.patients import sample_patient
    from cmr_ray.synth.report import write_report

    kinds = set()
    for i in range(60):
        p = sample_patient(3, i)
        text, mentions = write_report(p, {"ef": 50, "lv_edv_ml": 150.0, "lv_edd_mm": 50.0, "wall_mm": 10.0},
                                      np.random.default_rng(i))
        for m in mentions:
            kinds.add("name" if p.phi["last_name"] in m else "date")
            assert m in text
    assert kinds == {"name", "date"}


def test_series_writer_matches_pydicom_save_as(tmp_path):
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.Modality, ds.SOPClassUID = "Quillfeather^Odalys", "123", "MR", MR_IMAGE
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = "2", "-4096"
    writer = SeriesWriter(ds, MR_IMAGE)
    plane = centred_plane([1.5, -2.25, 30.0], [0.6, 0.8, 0.0], [0.0, 0.0, -1.0], 200.0, 16)
    arr = np.arange(256, dtype=np.uint16).reshape(16, 16)
    for n in (1, 12):
        values = image_values(plane, n, f"1.2.3.4.{n}", 33.3 * n, arr)
        writer.write(tmp_path / "fast.dcm", values)
        ds.file_meta = _file_meta(MR_IMAGE, values["SOPInstanceUID"])
        for k, v in values.items():
            if k != "PixelData":
                setattr(ds, k, v)
        _set_pixels(ds, arr, "")
        ref = io.BytesIO()
        ds.save_as(ref, enforce_file_format=True)
        assert (tmp_path / "fast.dcm").read_bytes() == ref.getvalue()
    back = pydicom.dcmread(tmp_path / "fast.dcm")
    assert back.InstanceNumber == 12 and np.array_equal(back.pixel_array, arr)


def test_cli_synth(tmp_path):
    from cmr_ray.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["synth", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "cmr-ray synth" in res.output
    res = runner.invoke(main, ["synth", str(tmp_path / "c"), "--studies", "2", "--seed", "5", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "2 studies" in res.output and (tmp_path / "c" / "labels.csv").exists()
    res = runner.invoke(main, ["synth", str(tmp_path / "c"), "--studies", "3", "--seed", "5"])
    assert res.exit_code == 2 and "different cohort" in res.output


def test_cli_synth_protocol_and_the_old_preset_flag(tmp_path, monkeypatch):
    """--protocol reaches the generator; the old --preset is a usage error naming --protocol,
    not read as it."""
    from cmr_ray.cli import main

    made = []
    monkeypatch.setattr("cmr_ray.synth.generate_cohort", lambda out, studies, seed, **kw: made.append(kw) or
                        {"studies": studies, "files": 0, "pathologies": {}})
    runner = CliRunner()
    res = runner.invoke(main, ["synth", str(tmp_path / "c"), "--studies", "1", "--protocol", "paper"])
    assert res.exit_code == 0, res.output
    assert made[-1]["protocol"] == "paper"
    res = runner.invoke(main, ["synth", str(tmp_path / "d"), "--studies", "1", "--preset", "paper"])
    assert res.exit_code == 2 and len(made) == 1
    assert "--preset was renamed to --protocol (use --protocol paper)" in res.output
    res = runner.invoke(main, ["synth", "--help"])
    assert "--protocol [small|paper]" in res.output and "--preset" not in res.output
