"""Impression extraction, de-identification and decoding of report text."""
from __future__ import annotations

import pytest

from cmr_ray.text import decode_report_bytes, extract_impression, normalize_impression, scrub

BODY = "1. Dilated left ventricle, LVEF 30%.\n2. No late gadolinium enhancement."


@pytest.mark.parametrize("report", [
    f"FINDINGS: LV dilated.\nIMPRESSION:\n{BODY}\n\nRECOMMENDATION: follow-up.",
    f"Findings: LV dilated.\n\nImpression:\n{BODY}\nElectronically signed by Dr A. Smith",
    f"HISTORY: dyspnea\nIMPRESSION\n{BODY}\n",
    f"  impression :  {BODY.splitlines()[0]}\n{BODY.splitlines()[1]}\nSIGNED BY: x",
    f"IMPRESSIONS:\n\n{BODY}\n\nDICTATED BY: y",
    f"**Impression**\n{BODY}\nRecommendations:\n- none",
    "Final impression - 1. Dilated left ventricle, LVEF 30%. 2. No late gadolinium enhancement.\nATTESTATION",
    f"I M P R E S S I O N:\n{BODY}\nCOMMENTS FOR REFERRER: call",
])
def test_impression_variants(report):
    assert extract_impression(report) == BODY


def test_inline_impression_and_stops():
    assert extract_impression("Impression: Normal study.") == "Normal study."
    assert extract_impression("IMPRESSION: normal\nRECOMMENDATIONS\nrepeat in 1 year") == "normal"
    # words like "Findings" inside an item do not end the impression; an ALL-CAPS heading does
    assert extract_impression("IMPRESSION:\n1. Findings consistent with amyloid.\nLV: small\nPLAN OF CARE: x") == \
        "1. Findings consistent with amyloid.\nLV: small"


@pytest.mark.parametrize("report", ["", None, "FINDINGS: normal.\nCONCLUSION: normal.", "IMPRESSION:\n\nSIGNED BY x",
                                    "The impression was normal."])
def test_no_impression(report):
    assert extract_impression(report) is None


def test_normalize_impression_for_duplicates():
    a = normalize_impression("1. Normal LV size.\n2. No LGE.")
    b = normalize_impression("1)  normal lv size\n2) no LGE")
    assert a == b == "normal lv size no lge"
    assert normalize_impression("LVEF 30%") != normalize_impression("LVEF 35%")


PHI = {"phi_patient_name": "O'BRIEN^MARY^ANNE", "phi_patient_id": "0012345678", "phi_accession_number": "ACC7788",
       "phi_study_date": "20210314", "phi_birth_date": "19560702", "phi_institution": "St Elsewhere Hospital"}


def test_scrub_removes_given_phi_in_any_case_and_format():
    text = ("Mary Anne O'Brien (MRN 12345678, acc ACC7788) born 07/02/1956, seen March 14, 2021 and "
            "2021-03-14 and 14.03.2021 at st elsewhere hospital. MARY's LVEF 30%.")
    out = scrub(text, PHI)
    for needle in ("mary", "anne", "o'brien", "12345678", "acc7788", "1956", "2021", "elsewhere"):
        assert needle not in out.lower(), (needle, out)
    assert "LVEF 30%" in out and "[NAME]" in out and "[DATE]" in out and "[ID]" in out


def test_scrub_generic_patterns_without_phi():
    out = scrub("Compared with 03/14/2021 and Jan 5, 2020; MRN: 9988776; phone 5551234567. EF 55%.")
    assert "03/14/2021" not in out and "Jan 5, 2020" not in out and "9988776" not in out
    assert "5551234567" not in out and "EF 55%" in out


def test_scrub_accepts_plain_values():
    assert scrub("Patient SMITH^JOHN seen", ["SMITH^JOHN"]) == "Patient [NAME]^[NAME] seen"
    assert scrub("", PHI) == ""


def test_decode_report_bytes():
    text = "Impression: no scar – café"
    for raw, codec in [(text.encode("utf-8"), "utf-8"), (text.encode("cp1252"), "cp1252"),
                       (b"\xef\xbb\xbf" + text.encode("utf-8"), "utf-8-sig"), (text.encode("utf-16"), "utf-16")]:
        got = decode_report_bytes(raw)
        assert got == text and got.encoding == codec
    latin = decode_report_bytes(b"caf\xe9 \x81")  # 0x81 is undefined in cp1252
    assert latin.encoding == "latin-1" and latin.startswith("café")


def test_scrub_precheck_never_skips_a_match():
    """_may_contain may say yes wrongly, never no: every character re.IGNORECASE matches to an
    ASCII letter passes it, and scrub gives what the unconditional regex gives."""
    import re

    from cmr_ray.text.report import _may_contain, _sub_literal

    for letter in "abcdefghijklmnopqrstuvwxyz":
        for c in [chr(o) for o in range(0x250)] + ["\u212a", "\u0130", "\u0131", "\u017f"]:
            if re.fullmatch(letter, c, re.IGNORECASE):
                assert _may_contain(f"x {c} y", letter), (letter, hex(ord(c)))
    text = "Seen by  DR. Jane\tDOE on 03/14/2021; MRN 00123. \u212aim Park."
    for literal in ("Jane Doe", "dr. jane doe", "Kim", "00123", "123", "Smith", "14/03"):
        pat = re.escape(literal).replace(r"\ ", r"\s+")
        lead = r"(?<![\w])" if literal[:1].isalnum() else ""
        tail = r"(?![\w])" if literal[-1:].isalnum() else ""
        assert _sub_literal(text, literal, "[X]") == re.sub(lead + pat + tail, "[X]", text, flags=re.I)
    assert not _may_contain(text, "Smith") and _may_contain(text, "kim")


def test_normalize_impression_is_the_one_the_model_hashes():
    from cmr_ray.model import ids

    assert ids.normalize_impression is normalize_impression  # one normalisation, not two
    assert normalize_impression("1. Mild LV dilation, LVEDD 58.5 mm.\n2) No LGE!") == "mild lv dilation lvedd 58.5 mm no lge"
    assert ids.impression_id("1. No LGE.") == ids.impression_id("1)  no lge")
    assert normalize_impression("LV/RV ratio 1.2") != normalize_impression("LV/RV ratio 12")
