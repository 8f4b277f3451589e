"""Every file of the synthetic cohort (classic, Enhanced MR, RLE, JPEG-LS, JPEG 2000 series)
gives the same header through read_header's fast scan and value access as through
pydicom's own parsing; and the fast scan is what reads the plain files."""
from __future__ import annotations

from cmr_ray.dicom import headers
from cmr_ray.dicom.headers import read_header


def _read_all(paths, fast: bool, monkeypatch):
    monkeypatch.setattr(headers, "FAST_SCAN", fast)
    monkeypatch.setattr(headers, "FAST_VALUES", fast)
    return [read_header(p) for p in paths]


def test_fast_and_pydicom_routes_agree_on_the_cohort(cohort, monkeypatch):
    out, _ = cohort
    paths = sorted(p for p in (out / "dicom").rglob("*") if p.is_file())
    assert len(paths) > 500
    fast, slow = _read_all(paths, True, monkeypatch), _read_all(paths, False, monkeypatch)
    diffs = [(p, k) for p, a, b in zip(paths, fast, slow) for k in a if repr(a[k]) != repr(b[k])]
    assert not diffs, diffs[:5]
    scanned = sum(headers._scan(p) is not None for p in paths)
    enhanced = sum(h["enhanced"] for h in fast)
    assert enhanced > 0 and scanned == len(paths) - enhanced  # only sequences go to pydicom
    assert {h["transfer_syntax"] for h in fast} >= {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"}
