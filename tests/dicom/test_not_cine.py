"""Several images at one position are not cine without cardiac timing (issue 16, item 1).

Each series is built the way the scanner that wrote the real case writes it: a Siemens DWI
with three b-values at one position, a Siemens DTI mosaic b0/b1000 pair, one image stored
twice in two transfer syntaxes, an ungated oblique time series.  The synthetic cohort's cine
(classic and Enhanced MR) must stay cine, also when its descriptions say nothing.
"""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cmr_ray.dicom import classify_series, classify_study, group_series
from cmr_ray.dicom.classify import cardiac_timing
from cmr_ray.dicom.headers import read_header
from tests.dicom.builders import SAX_NORMAL, headers_of, orientation_for, write_mr

OBLIQUE = orientation_for(SAX_NORMAL)  # oblique on purpose: axis-aligned planes hide the fault
SIEMENS = "SIEMENS MR HEADER"
DIFFUSION_TYPE = ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE")


def _one(paths):
    (s,) = group_series(headers_of(paths))
    return s


def _siemens_dwi(folder, b_values, *, desc, image_type=DIFFUSION_TYPE, rows=8, trigger=None, private=True):
    """Siemens (VB/VE) diffusion: one image per b-value at one position, the b-value in the
    private B_value (0019,xx0C) and in SequenceName ('*ep_b1000#1'), no cardiac timing."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, b in enumerate(b_values):
        seq = f"*ep_b{b}" + ("#1" if b else "")
        priv = [(0x0019, SIEMENS, 0x0C, "IS", str(b))] if private else []
        out.append(write_mr(folder / f"{i + 1}.dcm", series="1.3.12.2.1107.5.2.43.66112.1", desc=desc, instance=i + 1,
                            position=(-110.0, -95.0, 40.0), orientation=OBLIQUE, image_type=image_type, rows=rows,
                            cols=rows, trigger=(trigger[i] if trigger else None), private=priv,
                            extra={"SequenceName": seq}))
    return out


def test_siemens_dwi_three_b_values_is_not_cine(tmp_path):
    s = _one(_siemens_dwi(tmp_path, [0, 500, 1000], desc="dMRI_mb3_AP_1.5"))
    c = classify_series(s)
    assert c.sequence == "other", c.rule
    assert "b-values 0/500/1000" in c.rule and "not cine" in c.rule


def test_dwi_b_values_win_over_trigger_times(tmp_path):
    # gated diffusion: TriggerTime differs per image, but b-values say what the images are
    s = _one(_siemens_dwi(tmp_path, [0, 500, 1000], desc="", trigger=[0.0, 300.0, 600.0]))
    assert cardiac_timing(s.stats) == (False, "diffusion b-values 0/500/1000")
    assert classify_series(s).sequence == "other"


def test_b_value_read_from_each_place(tmp_path):
    private = _siemens_dwi(tmp_path / "p", [800], desc="")[0]
    by_name = _siemens_dwi(tmp_path / "n", [700], desc="", private=False)[0]
    standard = write_mr(tmp_path / "s.dcm", extra={"DiffusionBValue": 600.0})
    ge = write_mr(tmp_path / "g.dcm", private=[(0x0043, "GEMS_PARM_01", 0x39, "IS", ["1000000900", "8", "0", "0"])])
    plain = write_mr(tmp_path / "plain.dcm")
    assert [read_header(p)["b_value"] for p in (private, by_name, standard, ge, plain)] == [800, 700, 600, 900, None]


def test_dti_mosaic_b0_b1000_pair_is_not_cine(tmp_path):
    # nibabel's Siemens DTI pair: two mosaics at one position, b0 and b1000
    paths = _siemens_dwi(tmp_path, [0, 1000], desc="ep2d_DTI", rows=24,
                         image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"))
    c = classify_series(_one(paths))
    assert c.sequence == "other", c.rule


def test_dwi_named_by_image_type_only(tmp_path):
    # anonymised: private tags and SequenceName gone, ImageType still says DIFFUSION
    folder = tmp_path / "d"
    folder.mkdir()
    paths = [write_mr(folder / f"{i}.dcm", instance=i, orientation=OBLIQUE, image_type=DIFFUSION_TYPE,
                      extra={"NominalInterval": 900}) for i in (1, 2, 3)]
    s = _one(paths)
    assert cardiac_timing(s.stats) == (False, "diffusion ImageType DIFFUSION")
    assert classify_series(s).sequence == "other"


def test_one_image_in_two_transfer_syntaxes_is_not_cine(tmp_path):
    # pynetdicom's copies: the same image (same position and InstanceNumber) saved twice
    paths = [write_mr(tmp_path / f"{name}.dcm", series="1.2.826.0.1.3680043.8.498.1", instance=1, value=7,
                      orientation=OBLIQUE, syntax=ts)
             for name, ts in (("explicit", ExplicitVRLittleEndian), ("implicit", ImplicitVRLittleEndian))]
    hs = headers_of(paths)
    assert {h["transfer_syntax"] for h in hs} == {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    c = classify_series(_one(paths))
    assert c.sequence == "other", c.rule
    assert "no cardiac timing" in c.rule


@pytest.mark.parametrize("desc", ["", "ep2d_bold_moco", "SAX_stack"])
def test_oblique_time_series_without_cardiac_timing_is_not_cine(tmp_path, desc):
    # per-slice fMRI / perfusion without a telling description: 6 oblique slices x 10 time points,
    # AcquisitionTime advancing, no TriggerTime, CardiacNumberOfImages or NominalInterval
    n = np.asarray(SAX_NORMAL)
    paths = []
    for sl in range(6):
        for t in range(10):
            inst = sl * 10 + t + 1
            paths.append(write_mr(tmp_path / f"{inst:03d}.dcm", desc=desc, instance=inst,
                                  position=tuple(np.array([10.0, -20.0, 30.0]) + 8.0 * sl * n),
                                  orientation=OBLIQUE, extra={"AcquisitionTime": f"1200{t:02d}.000"}))
    s = _one(paths)
    assert s.stats["n_slices"] == 6 and s.stats["phases"] == 10
    (c,) = classify_study([s])
    assert (c.sequence, c.view) == ("other", "none"), c.rule
    assert "no cardiac timing" in c.rule


@pytest.mark.parametrize("enhanced", [False, True])
@pytest.mark.parametrize("blank", [False, True])
def test_synthetic_cohort_cine_stays_cine(tmp_path, enhanced, blank):
    from cmr_ray.synth import generate_study
    from cmr_ray.synth.patients import sample_patient

    p = sample_patient(0, 0)
    p.enhanced, p.compression = enhanced, ""
    generate_study(0, 0, "small", tmp_path, patient=p)
    hs = headers_of(sorted((tmp_path / "00000").rglob("*.dcm")))
    cine = {h["series_instance_uid"] for h in hs if "FIESTA" in h["series_description"]}
    if blank:  # the description says nothing: timing alone must still make cine
        hs = [{**h, "series_description": "", "protocol_name": ""} for h in hs]
    ss = group_series(hs)
    got = {s.series_uid: c for s, c in zip(ss, classify_study(ss))}
    assert len(cine) == 4
    assert all(got[u].sequence == "cine" for u in cine), [got[u].rule for u in cine]
    assert any("TriggerTime spread" in got[u].rule for u in cine)
