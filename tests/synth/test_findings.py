"""Finding labels: thresholds from findings.yaml, labelled from measured values, stated by the report."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cmr_ray.data import schema
from cmr_ray.synth import findings as fnd
from cmr_ray.synth.cohort import generate_study, measure_study, study_report
from cmr_ray.synth.findings import FINDINGS, finding_labels, measured_values
from cmr_ray.synth.patients import sample_patient
from cmr_ray.synth.report import stated_findings, write_report

NORMAL = {"ef": 62, "lv_edd_mm": 48, "wall_mm": 9, "rv_basal_mm": 33, "rvef": 58, "effusion_mm": 0, "lge_pattern": "none"}


def test_data_file_names_the_store_columns_and_a_source_for_each():
    assert FINDINGS == schema.FINDINGS
    assert all(f"label_{f}" in schema.LABEL_COLUMNS for f in FINDINGS)
    for name, f in fnd.spec()["findings"].items():
        assert len(f["source"]) > 40 and 0 <= f["omit"] < 0.5, name
    assert finding_labels(NORMAL, "M") == dict.fromkeys(FINDINGS, 0)


# (finding, measured key, sex, value just short of the threshold, value just past it)
EDGES = [
    ("lv_systolic_dysfunction", "ef", "M", 50, 49),
    ("lv_dilation", "lv_edd_mm", "M", 58, 59),
    ("lv_dilation", "lv_edd_mm", "F", 52, 53),
    ("lv_hypertrophy", "wall_mm", "F", 14, 15),
    ("rv_systolic_dysfunction", "rvef", "M", 45, 44),
    ("rv_dilation", "rv_basal_mm", "F", 41, 42),
    ("pericardial_effusion", "effusion_mm", "M", 0, 3),
    ("lge_present", "lge_pattern", "M", "none", "midwall"),
]


@pytest.mark.parametrize("name,key,sex,short,past", EDGES)
def test_a_label_flips_when_its_value_crosses_the_threshold(name, key, sex, short, past):
    below = finding_labels({**NORMAL, key: short}, sex)
    above = finding_labels({**NORMAL, key: past}, sex)
    assert below[name] == 0 and above[name] == 1
    assert {k: v for k, v in above.items() if k != name} == {k: v for k, v in below.items() if k != name}
    assert finding_labels({**NORMAL, key: None}, sex)[name] is None  # unknown stays unknown


def test_labels_come_from_the_measured_value_not_the_pathology():
    p = sample_patient(0, 4, pathology="normal")
    p.sex = "F"
    for edd, want in ((52.4, 0), (52.6, 1)):  # the report prints whole mm: 52 normal, 53 dilated
        p.lv_edd_mm = edd
        assert finding_labels(measured_values(p, {"ef": 60}), "F")["lv_dilation"] == want
    a = sample_patient(0, 5, pathology="amyloid")
    a.wall_mm = a.septal_mm = 14.2
    assert finding_labels(measured_values(a, {"ef": 60}), a.sex)["lv_hypertrophy"] == 0
    a.rv_contraction = 0.18 * 44 / 58  # nominal RVEF 44%
    assert finding_labels(measured_values(a, {"ef": 60}), a.sex)["rv_systolic_dysfunction"] == 1


def test_generated_labels_agree_with_the_measured_values(tmp_path):
    for i, pathology in enumerate(("nicm", "amyloid")):
        p = sample_patient(5, i, pathology=pathology)
        study = generate_study(5, i, "small", tmp_path, patient=p)
        row = study["labels"]
        m = measure_study(p)  # the same values without writing DICOM
        alone = study_report(5, i, "small", patient=p)  # and the same report
        assert alone["report"] == study["report"] and alone["phi"] == study["phi"]
        assert all(alone["labels"][k] == row[k] for k in (*FINDINGS, "nicm", "icm", "amyl", "hcm", "acdc"))
        assert {k: row[k] for k in ("ef", "lv_edd_mm", "wall_mm", "rv_basal_mm", "rvef", "effusion_mm")} == \
               {k: m[k] for k in ("ef", "lv_edd_mm", "wall_mm", "rv_basal_mm", "rvef", "effusion_mm")}
        assert {f: row[f] for f in FINDINGS} == finding_labels(m, p.sex)
    p = sample_patient(6, 0, site="external")  # another site's house style too
    assert study_report(6, 0, site="external")["report"] == generate_study(6, 0, "small", tmp_path / "x", patient=p)["report"]


def _impression(text: str) -> list[str]:
    body = re.split(r"\n(?:IMPRESSION:?|Impression:)\n", text)[-1]
    return [re.sub(r"^\d+[.)] ", "", line) for line in body.strip().splitlines()]


STATES = {  # how an impression states each finding (item 1 is always the LV)
    "lv_systolic_dysfunction": lambda items: "reduced systolic" in items[0],
    "lv_dilation": lambda items: "dilated" in items[0],
    "lv_hypertrophy": lambda items: any(re.search(r"\bhypertrophy\b", s) for s in items),
    "rv_dilation": lambda items: any(re.search(r"dilated right ventricle|right ventricle \w+ dilated", s, re.I) for s in items),
    "rv_systolic_dysfunction": lambda items: any(re.search(r"right ventric\w* (?:systolic dysfunction|systolic function \(RVEF)|"
                                                           r"right ventricle[\w ]* with \w+ reduced systolic", s, re.I) for s in items),
    "lge_present": lambda items: any(re.search(r"infarct scar|Mid-wall fibrosis|Patchy LGE|Diffuse subendocardial LGE", s) for s in items),
    "pericardial_effusion": lambda items: any("pericardial effusion" in s for s in items),
}


def test_the_impression_states_exactly_the_positive_findings_it_does_not_omit():
    seen = dict.fromkeys(FINDINGS, 0)
    for i in range(160):
        p = sample_patient(1, i)
        m = measured_values(p, {"ef": p.ef_target, "lv_edv_ml": 120.0})  # no rendering: the EF the phantom aims at
        labels = finding_labels(m, p.sex)
        text, _ = write_report(p, m, np.random.default_rng(i))
        stated = stated_findings(labels, np.random.default_rng(i))  # the report's first draws
        items = _impression(text)
        for f in FINDINGS:
            assert STATES[f](items) == stated[f], (i, p.pathology, f, labels[f], items)
            seen[f] += stated[f]
    assert all(seen.values()), seen  # every finding was stated at least once


def test_a_positive_finding_is_left_out_of_the_impression_at_its_documented_rate():
    p = sample_patient(2, 0, pathology="amyloid")
    p.effusion_mm, p.rv_scale, p.rv_contraction = 4.0, 1.4, 0.1
    m = measured_values(p, {"ef": 40, "lv_edv_ml": 90.0})
    labels = finding_labels(m, p.sex)
    assert all(labels[f] for f in ("pericardial_effusion", "rv_dilation", "lv_systolic_dysfunction", "lge_present"))
    n, missing = 600, dict.fromkeys(FINDINGS, 0)
    for k in range(n):
        text, _ = write_report(p, m, np.random.default_rng(1000 + k))
        items = _impression(text)
        for f in FINDINGS:
            missing[f] += labels[f] and not STATES[f](items)
        assert "pericardial effusion" in text.split("IMPRESSION")[0].split("mpression")[0]  # findings section: always
    for f in ("pericardial_effusion", "rv_dilation"):
        assert abs(missing[f] / n - fnd.omit_rate(f)) < 0.04, (f, missing[f])  # 0.10 +/- ~3 sigma
    assert missing["lv_systolic_dysfunction"] == 0 and missing["lge_present"] == 0  # omit rate 0


def test_a_labels_csv_may_carry_any_subset_of_the_findings(tmp_path):
    from cmr_ray.data.tables import load_labels

    path = tmp_path / "labels.csv"
    path.write_text("accession_number,hcm,lv_dilation,pericardial_effusion\nA1,1,1,\nA2,0,0,yes\n")
    lab = load_labels(path)
    assert lab["A1"]["label_lv_dilation"] == 1 and lab["A1"]["label_pericardial_effusion"] is None
    assert lab["A2"]["label_pericardial_effusion"] == 1 and "label_rv_dilation" not in lab["A2"]  # null in the store
    only = tmp_path / "only.csv"
    only.write_text("accession_number,lge_present\nA1,0\n")
    assert load_labels(only)["A1"]["label_lge_present"] == 0 and load_labels(only)["A1"]["label_hcm"] is None
