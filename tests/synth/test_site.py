"""Another hospital's cohort (`site="external"`): its own scanners, pathology mix and report
style, labelled by the same findings code; the default cohort's draws are untouched."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from cmr_ray.synth import generate_cohort
from cmr_ray.synth.findings import FINDINGS, finding_labels
from cmr_ray.synth.patients import SITES, sample_patient
from cmr_ray.synth.protocol import matrix_size
from cmr_ray.synth.report import restyle
from cmr_ray.text import extract_impression


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    out = tmp_path_factory.mktemp("external")
    return out, generate_cohort(out, studies=3, seed=5, workers=1, progress=False, site="external")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_internal_site_draws_as_before_and_external_differs():
    for i in range(20):
        a, b = sample_patient(3, i), sample_patient(3, i, site="internal")
        assert a == b and a.site == "internal"
    assert SITES["internal"]["report"] == "internal" and matrix_size(96) == 96
    with pytest.raises(ValueError, match="unknown site 'moon'"):
        sample_patient(0, 0, site="moon")


def test_external_site_has_its_own_scanners_and_prevalence():
    n = 1500
    inside = [sample_patient(1, i) for i in range(n)]
    outside = [sample_patient(1, i, site="external") for i in range(n)]
    frac = lambda ps, f: sum(map(f, ps)) / n  # noqa: E731
    assert frac(outside, lambda p: p.vendor == "Philips") > 0.55 > 0.3 > frac(inside, lambda p: p.vendor == "Philips")
    assert frac(outside, lambda p: p.vendor == "UKB") == 0
    assert frac(outside, lambda p: p.field_t == 3.0) > 0.6 > frac(inside, lambda p: p.field_t == 3.0)
    assert frac(outside, lambda p: p.pathology == "icm") > 0.24 > frac(inside, lambda p: p.pathology == "icm") - 0.02
    assert frac(outside, lambda p: p.pathology == "normal") > 0.26 > frac(inside, lambda p: p.pathology == "normal")
    assert min(p.fov_mm for p in outside) >= 200 and np.mean([p.noise for p in outside]) > 0.045
    assert matrix_size(96, "external") == 80 and matrix_size(256, "external") == 216


def test_external_cohort_labels_come_from_the_findings_code(external):
    out, summary = external
    assert summary["site"] == "external" and json.loads((out / "cohort.json").read_text())["site"] == "external"
    for r in _rows(out / "labels.csv"):
        measured = {k: (r[k] if k == "lge_pattern" else int(float(r[k])))
                    for k in ("ef", "lv_edd_mm", "wall_mm", "rvef", "rv_basal_mm", "effusion_mm", "lge_pattern")}
        assert {f: int(r[f]) for f in FINDINGS} == finding_labels(measured, r["sex"])
    first = sorted((out / "dicom" / "00000").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    assert int(ds.Rows) == 80  # the site's matrix (small protocol: 96 at the internal site)


def test_external_reports_restate_the_same_facts_in_their_own_style(external):
    out, _ = external
    phi = json.loads((out / "phi.json").read_text())
    for r, who in zip(_rows(out / "reports.csv"), phi["studies"]):
        text = r["report_text"]
        assert "Clinical impression:" in text and "IMPRESSION" not in text and "FINDINGS" not in text
        assert not re.search(r"\d mm\b", text) and "late gadolinium" not in text
        imp = extract_impression(text)
        assert imp and imp.startswith("- ") and re.search(r"EF \d{1,2} %", imp)
        assert all(m in text for m in who["report_mentions"])  # names and dates as written


def test_restyle_keeps_numbers_and_meaning():
    text = ("CARDIAC MRI REPORT\n\nHISTORY: 50-year-old man.\n\nTECHNIQUE: 1.5T CMR. Contrast 0.15 mmol/kg (TI 300 ms).\n\n"
            "FINDINGS:\nThe left ventricle is moderately dilated (LVEDD 64 mm, LVEDV 210 ml). Wall thickness 9 mm.\n"
            "Global systolic function is moderately reduced, with an ejection fraction of 34%.\n\nIMPRESSION:\n"
            "1. Dilated left ventricle, EF 34%.\n2) No myocardial scar or fibrosis; findings are consistent with "
            "idiopathic dilated cardiomyopathy.\n3. Small pericardial effusion (4 mm).\n")
    assert restyle(text) == text == restyle(text, "internal")
    ext = restyle(text, "external")
    assert ext.startswith("Cardiovascular magnetic resonance study\n")
    for part in ("Reason for referral: 50-year-old", "Sequences acquired: 1.5 tesla CMR", "0.15 mmol/kg", "TI 300 ms",
                 "Results:\nThe LV is moderately enlarged (LVEDD 6.4 cm, LVEDV 210 mL)", "Wall thickness 0.9 cm",
                 "with an EF of 34 %", "Clinical impression:\n- Enlarged LV, EF 34 %.",
                 "in keeping with idiopathic dilated cardiomyopathy", "- Small pericardial fluid collection (0.4 cm)."):
        assert part in ext, part
    assert extract_impression(ext).count("\n") == 2
    with pytest.raises(ValueError, match="unknown report style"):
        restyle(text, "other")


def test_cohort_marker_keeps_sites_apart(external, tmp_path):
    out, summary = external
    assert generate_cohort(out, studies=3, seed=5, progress=False, site="external") == summary
    with pytest.raises(FileExistsError, match="different cohort"):
        generate_cohort(out, studies=3, seed=5, progress=False)  # the internal cohort of the same seed
    with pytest.raises(ValueError, match="unknown site"):
        generate_cohort(tmp_path / "x", studies=1, seed=0, progress=False, site="moon")


def test_cli_site_option(tmp_path):
    from cmr_ray.cli import main

    res = CliRunner().invoke(main, ["synth", str(tmp_path / "ext"), "--site", "external", "--studies", "1",
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "site external" in res.output
    res = CliRunner().invoke(main, ["synth", str(tmp_path / "a"), "--format", "acdc", "--site", "external"])
    assert res.exit_code == 2 and "--site external writes DICOM only" in res.output
