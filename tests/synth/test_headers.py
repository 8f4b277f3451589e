"""Headers agree with the geometry: slice order, phases, LAX vs SAX, formats, read-back."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from cmr_ray.synth.protocol import PROTOCOLS
from tests.synth.conftest import ZOO_FORMATS, frames, read_study, series_by_key

CINE_AND_LGE = ["cine_sax", "cine_2ch", "cine_3ch", "cine_4ch", "lge_sax", "lge_2ch", "lge_3ch", "lge_4ch"]


def _normal(iop):
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    assert abs(np.linalg.norm(row) - 1) < 1e-5 and abs(np.linalg.norm(col) - 1) < 1e-5
    assert abs(row @ col) < 1e-5
    return np.cross(row, col)


@pytest.mark.parametrize("pathology", sorted(ZOO_FORMATS))
def test_slices_step_along_the_normal_and_phases_match(zoo, pathology):
    p, r, study_dir = zoo[pathology]
    by_key = series_by_key(read_study(study_dir), p)
    for key in CINE_AND_LGE + ["flow", "t1"]:
        frs = frames(by_key[key])
        ds0 = frs[0]["ds"]
        n = _normal(frs[0]["iop"])
        assert all(np.allclose(f["iop"], frs[0]["iop"]) for f in frs), key
        pos = np.array([f["ipp"] @ n for f in frs])
        levels = np.unique(np.round(pos, 3))
        n_phases = int(ds0.CardiacNumberOfImages)
        # every slice position holds CardiacNumberOfImages images with distinct, rising trigger times
        for lv in levels:
            trig = sorted(f["trigger"] for f, q in zip(frs, pos) if abs(q - lv) < 1e-3)
            assert len(trig) == n_phases, (key, lv)
            assert len(set(trig)) == n_phases and trig[-1] < float(ds0.NominalInterval)
        if len(levels) > 1:
            # positions differ only along the normal, by SpacingBetweenSlices
            d = np.diff(np.array(sorted({tuple(np.round(f["ipp"], 4)) for f in frs}, key=lambda v: np.asarray(v) @ n)), axis=0)
            assert np.allclose(np.cross(d, n), 0, atol=1e-3), key
            spacing = float(ds0.get("SpacingBetweenSlices") or ds0.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices)
            assert np.allclose(np.diff(levels), spacing, atol=1e-3), key
        if "SliceLocation" in ds0:
            assert all(abs(float(f["ds"].SliceLocation) - f["ipp"] @ n) < 1e-3 for f in frs)
    assert int(by_key["cine_sax"][0].CardiacNumberOfImages) >= 12
    assert len({round(f["ipp"] @ _normal(f["iop"]), 3) for f in frames(by_key["cine_sax"])}) >= 6
    loc = [_normal(f["iop"]) for f in frames(by_key["loc"])]
    assert len(loc) == 3 and all(abs(loc[i] @ loc[j]) < 1e-6 for i, j in ((0, 1), (0, 2), (1, 2)))  # 3-plane
    lge = by_key["lge_sax"][0]
    ti = lge.get("InversionTime") or lge.SharedFunctionalGroupsSequence[0].MRModifierSequence[0].InversionTimes
    assert float(np.ravel(ti)[0]) == p.ti_ms


@pytest.mark.parametrize("pathology", ["icm", "normal"])
def test_lax_planes_are_at_an_angle_to_sax(zoo, pathology):
    p, r, study_dir = zoo[pathology]
    by_key = series_by_key(read_study(study_dir), p)
    sax = _normal(frames(by_key["cine_sax"])[0]["iop"])
    lax = {v: _normal(frames(by_key[f"cine_{v}"])[0]["iop"]) for v in ("2ch", "3ch", "4ch")}
    for v, n in lax.items():
        ang = np.degrees(np.arccos(abs(n @ sax)))
        assert 75 < ang <= 90.001, (v, ang)  # LAX planes contain the long axis (small tilt)
        assert np.allclose(frames(by_key[f"lge_{v}"])[0]["iop"], frames(by_key[f"cine_{v}"])[0]["iop"])
    between = np.degrees(np.arccos(abs(lax["2ch"] @ lax["4ch"])))
    assert 70 < between < 110  # 2ch and 4ch are about orthogonal views
    # the cine SAX and LGE SAX stacks are the same slices
    assert np.allclose([f["ipp"] for f in frames(by_key["lge_sax"])],
                       [f["ipp"] for f in frames(by_key["cine_sax"])][:: int(by_key["cine_sax"][0].CardiacNumberOfImages)], atol=1e-4)


def test_formats_and_every_file_reads_back(zoo, cohort):
    seen_ts, seen_enhanced = set(), 0
    dirs = [d for _, _, d in zoo.values()] + [cohort[0] / "dicom"]
    n = 0
    for d in dirs:
        for f in sorted(d.rglob("*.dcm")):
            ds = pydicom.dcmread(f)
            assert ds.Modality == "MR" and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            arr = ds.pixel_array  # decodes RLE / JPEG-LS / JPEG 2000 and multi-frame
            nf = int(ds.get("NumberOfFrames", 1))
            assert arr.shape == ((nf,) if nf > 1 else ()) + (ds.Rows, ds.Columns)
            assert arr.max() > 0 and arr.max() < 4096
            seen_ts.add(str(ds.file_meta.TransferSyntaxUID))
            seen_enhanced += ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.1"
            n += 1
    assert {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"} <= seen_ts
    assert seen_enhanced >= 8 and n > 900


def test_enhanced_study_keeps_per_frame_geometry(zoo):
    p, r, study_dir = zoo["icm"]
    by_key = series_by_key(read_study(study_dir), p)
    (ds,) = by_key["cine_sax"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.1" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    per = ds.PerFrameFunctionalGroupsSequence
    assert len(per) == int(ds.NumberOfFrames) == PROTOCOLS["small"]["slices"] * int(ds.CardiacNumberOfImages)
    idx = {(int(f.FrameContentSequence[0].InStackPositionNumber), int(f.FrameContentSequence[0].TemporalPositionIndex)) for f in per}
    assert len(idx) == len(per)


def test_headers_carry_the_recorded_phi(zoo):
    p, r, study_dir = zoo["normal"]
    ds = next(iter(read_study(study_dir).values()))[0]
    phi = r["phi"]
    assert str(ds.PatientName) == phi["patient_name"] and ds.PatientID == phi["patient_id"]
    assert ds.AccessionNumber == phi["accession_number"] == r["labels"]["accession_number"]
    assert ds.PatientBirthDate == phi["birth_date"] and ds.StudyDate == phi["study_date"]
    assert ds.InstitutionName == phi["institution"]
