"""Series classification: shared labelled descriptions, the reviewed fixture, header evidence."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cmr_ray.dicom import classify_description, classify_series, classify_study, group_series, lge_variant
from tests.dicom.builders import SAX_NORMAL, headers_of, orientation_for, write_stack

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "cmr_series_descriptions"
FIXTURE = ROOT / "tests" / "fixtures" / "series_decisions.csv"
LABEL_VIEW = {"SAX": "sax", "2CH": "2ch", "3CH": "3ch", "4CH": "4ch", "LVOT": "3ch"}


def _labelled():
    if not SHARED.is_dir():
        return []
    rows = []
    for f in sorted(SHARED.glob("*.csv")):
        with open(f, encoding="utf-8-sig", newline="") as fh:  # ukbiobank csv starts with a BOM
            rows += [(f.name, r["series_description"], r["cleaned_series_names"].strip())
                     for r in csv.DictReader(fh)]
    return rows


def test_agrees_with_every_labelled_shared_row():
    rows = _labelled()
    if not rows:
        pytest.skip(f"shared series-description tables not found at {SHARED}")
    labelled = [r for r in rows if r[2]]
    assert len(labelled) >= 100
    wrong = [(f, d, lab, classify_description(d)) for f, d, lab in labelled
             if classify_description(d)[:2] != ("cine", LABEL_VIEW[lab])]
    assert not wrong, wrong[:5]


def test_reviewed_fixture_decisions():
    with open(FIXTURE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 150
    wrong = [(r["series_description"], r["sequence"], r["view"], classify_description(r["series_description"]))
             for r in rows if classify_description(r["series_description"])[:2] != (r["sequence"], r["view"])]
    assert not wrong, wrong[:5]
    lge = {r["series_description"] for r in rows if r["sequence"] == "lge"}
    assert {"SAX_IrP-FGRE_TI=240", "MAG:DE_SA_2D_MDE", "PS:LGE_SA_stack", "4CH_DHE",
            "tfi_psir_single-shot_short_axis_stack_PSIR"} <= lge


@pytest.mark.parametrize("desc", [
    "3-pl_Loc_Fiesta", "LOC_SAX_FIESTA_BH", "TI-Scout", "LOOKLOCKER", "SURVEY_BFFE", "CINE_IR", "4CH_CineIR",
    "localizer", "Cine_2CH_loc", "Short_Axis_localizer", "AAHeart_Scout", "DefineLongaxis_3Ch_4Ch_2Ch",
    "T1Map_LongT1_pre_SA_MOCO", "T1_MOLLI_MAP_native_PRE", "ShMOLLI_SAX", "T2Map_TrueFISP_mid_SA", "T2_star_SA_MID",
    "SAX_ME_T2*_TE_8", "REST_PERFUSION_(AERA_REF.)", "first_pass_perf_sax_trufi", "PA_FastPC_V=250_BH",
    "mpa_sQFLOW_BH", "Q_flow_(Qs)_Aorta_250", "AX_4D_FLOWq", "SAX_VENC_150", "cine_tagging_3sl_SAX_b4",
    "SAX_Tags_Grid_T2_FGRE_BH", "SAX_T2_DIRFSE_BH", "DB_HASTE_AX", "3D_MRA_cor", "Inline_VF_Results",
    "Timing_IDRIVE", "SAX_SPAMM_CINE"])
def test_never_cine_or_lge(desc):
    assert classify_description(desc)[:2] == ("other", "none")


@pytest.mark.parametrize("desc,expected", [
    ("4CH_FIESTA", ("cine", "4ch")), ("SA_CINE_mBH", ("cine", "sax")), ("VLA_CINE", ("cine", "2ch")),
    ("HLA_CINE", ("cine", "4ch")), ("CINE_LVOT", ("cine", "3ch")), ("two_chamber_cine", ("cine", "2ch")),
    ("PS:LGE_SA_stack", ("lge", "sax")), ("MAG:DE_SA_2D_MDE", ("lge", "sax")), ("LVOT_DHE", ("lge", "3ch")),
    ("SAX_IrP-FGRE_TI=240", ("lge", "sax")), ("tfl20_t1_psir_segmented_SHORT_AX_PSIR", ("lge", "sax")),
    ("RVOT_FIESTA_BH", ("cine", "none")), ("AX_CINE_STACK_mBH", ("cine", "none")), ("", ("other", "none"))])
def test_description_rules(desc, expected):
    assert classify_description(desc)[:2] == expected


def test_protocol_name_is_the_fallback():
    assert classify_description("", "SA_CINE")[:2] == ("cine", "sax")
    assert classify_description("Series 5", "4CH_DE")[:2] == ("lge", "4ch")
    assert classify_description("SAX_CINE", "T1 MOLLI")[:2] == ("other", "none")


def test_lge_variant():
    assert lge_variant("SAX_DE_2D_400_mBH_PSIR") == "psir"
    assert lge_variant("PS:LGE_SA_stack") == "psir"
    assert lge_variant("MAG:DE_SA_2D_MDE") == "magnitude"
    assert lge_variant("4CH_DHE") == "unknown"


def _one(paths):
    (s,) = group_series(headers_of(paths))
    return s


def test_header_evidence_overrides_description(tmp_path):
    # says cine, but one phase with an inversion time: LGE
    s = _one(write_stack(tmp_path / "a", n_slices=6, n_phases=1, desc="SAX_CINE", ti=300.0))
    c = classify_series(s)
    assert (c.sequence, c.view) == ("lge", "sax") and "InversionTime=300" in c.rule
    # says cine, one phase, no inversion time: other
    s = _one(write_stack(tmp_path / "b", n_slices=1, n_phases=1, desc="4CH_CINE"))
    c = classify_series(s)
    assert (c.sequence, c.view) == ("other", "none") and "only one phase" in c.rule
    # says LGE, but 20 phases: a TI scout, not LGE
    s = _one(write_stack(tmp_path / "c", n_slices=1, n_phases=20, desc="4CH_DE", ti=250.0))
    c = classify_series(s)
    assert c.sequence == "other" and "20 phases" in c.rule
    # LGE that agrees
    s = _one(write_stack(tmp_path / "d", n_slices=1, n_phases=1, desc="4CH_DE_PSIR", ti=250.0))
    c = classify_series(s)
    assert (c.sequence, c.view, c.variant) == ("lge", "4ch", "psir")


def test_localizer_image_type_is_other(tmp_path):
    s = _one(write_stack(tmp_path, n_slices=1, n_phases=10, desc="SAX_CINE",
                         image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")))
    assert classify_series(s).sequence == "other"


def test_empty_description_decided_from_timing_and_geometry(tmp_path):
    sax = _one(write_stack(tmp_path / "sax", n_slices=8, n_phases=12, desc=""))
    c = classify_series(sax)
    assert (c.sequence, c.view) == ("cine", "sax")
    assert "description unhelpful" in c.rule and "8 parallel oblique slices" in c.rule
    lge = _one(write_stack(tmp_path / "lge", n_slices=1, n_phases=1, desc="", ti=320.0))
    assert classify_series(lge).sequence == "lge"
    axial = _one(write_stack(tmp_path / "ax", n_slices=8, n_phases=12, desc="", normal=(0, 0, 1)))
    c = classify_series(axial)
    assert (c.sequence, c.view) == ("cine", "none") and "axial" in c.rule


def test_study_context_names_an_unnamed_long_axis(tmp_path):
    lax_normal = tuple(float(x) for x in orientation_for(SAX_NORMAL)[:3])  # in-plane of SAX: at 90 degrees
    study = "1.2.826.0.9"
    paths = (write_stack(tmp_path / "s", n_slices=6, n_phases=10, desc="SAX_FIESTA_BH", study=study, series_number=1)
             + write_stack(tmp_path / "f", n_slices=1, n_phases=10, desc="4CH_FIESTA_BH", study=study,
                           normal=lax_normal, series_number=2)
             + write_stack(tmp_path / "u", n_slices=1, n_phases=10, desc="", study=study, normal=lax_normal,
                           series_number=3, origin=(12.0, -20.0, 30.0))
             + write_stack(tmp_path / "o", n_slices=1, n_phases=10, desc="Series 4", study=study,
                           normal=(0.2, 0.9, 0.4), series_number=4))
    ss = group_series(headers_of(paths))
    cs = classify_study(ss)
    assert [(c.sequence, c.view) for c in cs] == [("cine", "sax"), ("cine", "4ch"), ("cine", "4ch"), ("cine", "none")]
    assert "in the plane of the study's 4ch" in cs[2].rule and "undecidable" in cs[3].rule
