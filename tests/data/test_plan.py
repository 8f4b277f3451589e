"""Planning on hand-made header tables: pure Python, no files, no Ray."""
from __future__ import annotations

import pytest

from cmr_ray.config import load_config
from cmr_ray.data import keys
from cmr_ray.data.plan import plan_studies

from .helpers import index_rows, series_headers

ROOT = "/nonexistent/dicom"
REPORT = "FINDINGS: dilated LV.\nIMPRESSION:\n1. Dilated cardiomyopathy in Doe^Jane.\n2. No LGE."


def full_study(study, patient, accession, **kw):
    hs = []
    for k, (seq, view) in enumerate([("cine", "sax"), ("cine", "4ch"), ("cine", "2ch"), ("lge", "sax")], 1):
        hs += series_headers(ROOT, study, f"s{k}", seq, view, patient=patient, accession=accession,
                             series_number=k, **kw)
    return hs


def run(headers, reports, cfg=None, labels=None, salt="salt-a"):
    return plan_studies(index_rows(headers, ROOT), reports, labels, salt, cfg or load_config())


def test_slots_chosen_and_every_file_has_a_row():
    hs = full_study("st1", "P1", "A1")
    plan = run(hs, {"A1": [REPORT]})
    assert len(plan.studies) == 1 and not plan.excluded
    st = plan.studies[0]
    assert sorted(st.slots) == ["cine_2ch", "cine_4ch", "cine_sax", "lge_sax"]
    sax = st.slots["cine_sax"]
    assert (len(sax.grid), len(sax.grid[0])) == (6, 12)
    assert len(plan.files) == len(hs)
    assert {r["status"] for r in plan.files.values()} == {"used"}
    assert all(r["study_key"] == st.study_key for r in plan.files.values())


def test_keys_are_salted_and_hide_uids():
    hs = full_study("st1", "P1", "A1")
    a, b = run(hs, {"A1": [REPORT]}, salt="one"), run(hs, {"A1": [REPORT]}, salt="two")
    ka, kb = a.studies[0].study_key, b.studies[0].study_key
    assert ka != kb
    assert "1.2.826" not in ka and "P1" not in a.studies[0].patient_key
    assert ka == keys.study_key("one", "1.2.826.st1")


def test_impression_extracted_and_scrubbed():
    plan = run(full_study("st1", "P1", "A1"), {"A1": [REPORT]})
    imp = plan.studies[0].impression
    assert "Dilated cardiomyopathy" in imp
    assert "Doe" not in imp and "Jane" not in imp and "FINDINGS" not in imp


def test_split_is_patient_level_and_deterministic():
    hs, reports = [], {}
    for i in range(60):
        patient = f"P{i // 2}"  # two studies per patient
        hs += series_headers(ROOT, f"st{i}", "s1", "cine", "sax", patient=patient, accession=f"A{i}",
                             slices=2, phases=3)
        reports[f"A{i}"] = [REPORT]
    cfg = load_config(overrides={"data.val_fraction": 0.2, "data.test_fraction": 0.3})
    a, b = run(hs, reports, cfg), run(hs, reports, cfg)
    assert [(s.study_key, s.split) for s in a.studies] == [(s.study_key, s.split) for s in b.studies]
    by_patient = {}
    for s in a.studies:
        by_patient.setdefault(s.patient_key, set()).add(s.split)
    assert len(by_patient) == 30
    assert all(len(v) == 1 for v in by_patient.values())
    splits = [s.split for s in a.studies]
    assert {"train", "val", "test"} <= set(splits)


def test_assign_split_fractions():
    splits = [keys.assign_split(keys.patient_key("x", str(i)), 0.1, 0.25) for i in range(4000)]
    assert abs(splits.count("test") / 4000 - 0.25) < 0.03
    assert abs(splits.count("val") / 4000 - 0.10) < 0.03
    assert all(keys.assign_split(keys.patient_key("x", str(i)), 0.0, 0.0) == "train" for i in range(50))


def test_repeated_acquisition_chooses_one_deterministically():
    hs = series_headers(ROOT, "st1", "s1", "cine", "sax", series_number=3, accession="A1")
    hs += series_headers(ROOT, "st1", "s2", "cine", "sax", series_number=7, accession="A1")
    plan = run(hs, {"A1": [REPORT]})
    chosen = plan.studies[0].slots["cine_sax"].series_uid
    assert chosen == "1.2.826.st1.s2"  # same size: the later repeat (higher SeriesNumber)
    ignored = [r for r in plan.files.values() if r["status"] == "ignored"]
    assert len(ignored) == 72 and all("repeated acquisition" in r["reason"] for r in ignored)
    again = run(list(reversed(hs)), {"A1": [REPORT]})
    assert again.studies[0].slots["cine_sax"].series_uid == chosen


@pytest.mark.parametrize("reports, reason", [
    ({}, "no report"),
    ({"A1": [REPORT, "IMPRESSION: something else entirely."]}, "different reports"),
    ({"A1": ["FINDINGS: all normal, nothing else said."]}, "no impression"),
])
def test_exclusions_have_reasons_and_rows(reports, reason):
    hs = full_study("st1", "P1", "A1")
    plan = run(hs, reports)
    assert not plan.studies
    assert len(plan.excluded) == 1 and reason in plan.excluded[0].reason
    assert len(plan.files) == len(hs)
    assert all(r["status"] == "ignored" and reason in r["reason"] for r in plan.files.values())


def test_identical_duplicate_reports_are_one_report():
    plan = run(full_study("st1", "P1", "A1"), {"A1": [REPORT, REPORT + "  "]})
    assert len(plan.studies) == 1


def test_required_views_from_config():
    hs = series_headers(ROOT, "st1", "s1", "lge", "sax", accession="A1")
    cfg = load_config(overrides={"data.views": "cine:sax+4ch"})
    plan = run(hs, {"A1": [REPORT]}, cfg)
    assert not plan.studies and "none of the required views" in plan.excluded[0].reason
    plan = run(hs, {"A1": [REPORT]})  # default combo includes lge:sax
    assert sorted(plan.studies[0].slots) == ["lge_sax"]


def test_other_series_ignored_and_unreadable_files_failed():
    hs = full_study("st1", "P1", "A1")
    loc = series_headers(ROOT, "st1", "loc", "cine", "sax", slices=1, phases=1, description="localizer",
                         series_number=99)
    rows = index_rows(hs + loc, ROOT) + [{"path": "st1/junk.txt", "header": None, "error": "not a DICOM file"}]
    plan = plan_studies(rows, {"A1": [REPORT]}, None, "salt", load_config())
    assert plan.files["st1/junk.txt"]["status"] == "failed"
    assert plan.files["st1/junk.txt"]["reason"] == "not a DICOM file"
    loc_rows = [plan.files[r["path"]] for r in index_rows(loc, ROOT)]
    assert all(r["status"] == "ignored" and "classified" in r["reason"] for r in loc_rows)
    assert len(plan.files) == len(rows)


def test_labels_attached():
    labels = {"A1": {"label_nicm": 1, "label_icm": 0, "label_amyl": None, "label_hcm": 0, "label_acdc": "DCM"}}
    plan = run(full_study("st1", "P1", "A1"), {"A1": [REPORT]}, labels=labels)
    assert plan.studies[0].labels == labels["A1"]
    plan = run(full_study("st1", "P1", "A1"), {"A1": [REPORT]})
    assert set(plan.studies[0].labels.values()) == {None}


def test_names_after_titles_scrubbed():
    from cmr_ray.data.plan import scrub_titled_names

    assert scrub_titled_names("4. Findings discussed with Dr. Pemberton") == "4. Findings discussed with Dr. [NAME]"
    assert scrub_titled_names("Ms. Ashdown is 40. Dr John Smith agreed.") == "Ms. [NAME] is 40. Dr [NAME] agreed."
    assert scrub_titled_names("Drainage normal. Mrs.") == "Drainage normal. Mrs."


def test_paths_naming_phi_are_found():
    from cmr_ray.data.plan import paths_with_phi

    hs = series_headers(ROOT, "st1", "s1", "cine", "4ch", patient="MRN778812", accession="ACC9")
    rels = ["doe_jane/1.dcm", "x/MRN778812/2.dcm", "2020-01-01/3.dcm", "20200101_cmr/4.dcm", "study7/5.dcm"]
    assert paths_with_phi(rels, hs) == ["doe_jane/1.dcm", "x/MRN778812/2.dcm", "20200101_cmr/4.dcm"]
    plan = run(hs, {"ACC9": [REPORT]})
    assert plan.phi_paths == [] and len(plan.studies) == 1  # 'st1/s1/0001.dcm' names nothing


def test_phi_matched_as_whole_path_tokens_never_inside_a_uid():
    # issue 16 (2): Siemens names files by SOPInstanceUID, which embeds the acquisition date
    from cmr_ray.data.plan import phi_in_paths

    hs = series_headers(ROOT, "st1", "s1", "cine", "4ch", patient="MRN778812", accession="ACC9")
    for h in hs:
        h["phi_study_date"] = "20161014"
    rels = ["st1/1.3.12.2.1107.5.2.43.66112.2016101409263663466202201.dcm",  # date inside a UID
            "1.3.12.2.1107.5.2.43.66112.30000016101406393785900000007/1.dcm",  # UID-named folder
            "st1/img_20161014093012.dcm",          # a longer digit run is not the date
            "mrn7788120/1.dcm",                    # nor a longer ID
            "Scan_20161014/1.dcm", "x/mrn778812_cmr/2.dcm", "JANE/doe/3.dcm", "acc9/4.dcm", "acc9x/5.dcm"]
    hits = phi_in_paths(rels, hs)
    assert sorted(hits) == ["JANE/doe/3.dcm", "Scan_20161014/1.dcm", "acc9/4.dcm", "x/mrn778812_cmr/2.dcm"]
    assert hits["Scan_20161014/1.dcm"] == ("study date", "Scan_[study date]/1.dcm")
    assert hits["x/mrn778812_cmr/2.dcm"] == ("patient ID", "x/[patient ID]_cmr/2.dcm")
    assert hits["JANE/doe/3.dcm"][1] == "[patient name]/doe/3.dcm"  # 'doe' is under 4 characters


def test_a_phi_path_leaves_out_its_study_only(capsys):
    # issue 16 (2): the check never loses the whole run: the study with a PHI path is left out
    # (its files masked in the manifest), the other study goes on
    from cmr_ray.data.plan import group_index
    from cmr_ray.data.prepare import _refuse_phi_paths

    bad = full_study("st1", "P1", "A1")
    bad[0]["path"] = f"{ROOT}/st1/Doe_Jane/0001.dcm"
    idx = index_rows(bad + full_study("st2", "P2", "A2"), ROOT)
    by_study, files = group_index(idx)
    excluded = _refuse_phi_paths(by_study, files, "salt-a", progress=True)
    assert list(by_study) == ["1.2.826.st2"]
    assert [e.study_key for e in excluded] == [keys.study_key("salt-a", "1.2.826.st1")]
    assert "patient name" in excluded[0].reason and len(excluded[0].files) == len(bad)
    row = files["st1/Doe_Jane/0001.dcm"]
    assert row["status"] == "failed" and row["path"] == "st1/[patient name]/0001.dcm"
    assert {files[r["path"]]["status"] for r in idx[1:len(bad)]} == {"ignored"}
    err = capsys.readouterr().err
    assert "1 file path(s) name their study's PHI; 1 study left out" in err and "Jane" not in err


def test_file_of_another_size_keeps_its_own_reason():
    # issue 16 (5): the file left out for its Rows x Columns says so, not only the series' reason
    hs = full_study("st1", "P1", "A1")
    odd = next(h for h in hs if h["series_description"] == "cine_4ch" and h["instance_number"] == 5)
    odd["rows"] = 64
    plan = run(hs, {"A1": [REPORT]})
    row = plan.files["st1/s2/0005.dcm"]
    assert row["reason"].startswith("Rows x Columns 64x32 differs from the series' 32x32"), row
    others = {plan.files[f"st1/s2/{i:04d}.dcm"]["reason"] for i in range(1, 13) if i != 5}
    assert len(others) == 1 and not others.pop().startswith("Rows x Columns")
