"""Patients: the pathology mix, the label mapping, variation within a label, PHI."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.synth.patients import LABELS, MIX, sample_patient
from cmr_ray.synth.phantom import Phantom, contraction, radial_shortening


@pytest.fixture(scope="module")
def patients():
    return [sample_patient(0, i) for i in range(600)]


def test_mix_and_label_mapping(patients):
    counts = {k: sum(p.pathology == k for p in patients) for k in MIX}
    for k, share in MIX.items():
        assert abs(counts[k] / len(patients) - share) < 0.06, (k, counts[k])
    for p in patients:
        lab = p.labels()
        assert lab["acdc"] in ACDC_CLASSES
        assert (lab["nicm"], lab["icm"], lab["amyl"], lab["hcm"], lab["acdc"]) == LABELS[p.pathology]
    assert {p.labels()["acdc"] for p in patients} == set(ACDC_CLASSES)
    assert any("rv_dilation" in p.comorbidities and p.pathology == "icm" for p in patients)


def test_parameters_vary_within_a_label_and_overlap_between(patients):
    by = lambda k, attr: np.array([getattr(p, attr) for p in patients if p.pathology == k])  # noqa: E731
    for k in MIX:
        assert by(k, "ef_target").std() > 3 and by(k, "lv_edd_mm").std() > 2 and by(k, "yaw").std() > 5
    # DCM and NICM overlap in cine (size, EF): only LGE separates them
    dcm, nicm = by("dcm", "lv_edd_mm"), by("nicm", "lv_edd_mm")
    assert max(dcm.min(), nicm.min()) < min(dcm.max(), nicm.max()) - 10
    assert {p.lge_pattern for p in patients if p.pathology == "dcm"} == {"none"}
    assert {p.lge_pattern for p in patients if p.pathology == "nicm"} == {"midwall"}
    assert {p.territory for p in patients if p.pathology == "icm"} == {"LAD", "LCx", "RCA"}


def test_gross_anatomy_does_not_give_the_diagnosis_away(patients):
    """Issue 14: an untrained tower read the 5-class label from gross anatomy (a normal RV
    and atria of one fixed size, disease LV sizes disjoint from normal, one chest for all).
    Healthy variation now spans what a disease changes, except where the disease is defined."""
    from cmr_ray.synth.report import RV_DILATED, lv_size

    by = lambda k, attr: np.array([getattr(p, attr) for p in patients if p.pathology == k])  # noqa: E731
    healthy_rv = np.concatenate([by(k, "rv_scale") for k in ("normal", "hcm", "amyloid")])
    assert healthy_rv.std() > 0.05 and healthy_rv.max() < RV_DILATED < by("rv", "rv_scale").min()
    assert by("normal", "atria_scale").std() > 0.02
    # some cardiomyopathies are not dilated: their LV size reads as normal, only EF/LGE tell
    for k in ("dcm", "nicm", "icm"):
        sized = [lv_size(p.lv_edd_mm, p.sex) for p in patients if p.pathology == k]
        assert 0.1 < sized.count("normal") / len(sized) < 0.7, (k, sized.count("normal"))
    for attr, spread in (("body_scale", 0.05), ("fat_mm", 5.0)):
        assert np.std([getattr(p, attr) for p in patients]) > spread
    assert np.std([p.body_shift[0] for p in patients]) > 5


def test_formats_and_phi(patients):
    enhanced = np.mean([p.enhanced for p in patients])
    compressed = np.mean([bool(p.compression) for p in patients])
    assert 0.05 < enhanced < 0.16 and 0.05 < compressed < 0.16
    assert len({p.phi["accession_number"] for p in patients}) == len(patients)
    assert len({p.phi["patient_id"] for p in patients}) == len(patients)
    assert sample_patient(0, 5).phi == patients[5].phi  # deterministic in (seed, index)
    with pytest.raises(ValueError, match="unknown pathology"):
        sample_patient(0, 0, pathology="flu")


def test_contraction_reaches_target_ef():
    for ef in (20.0, 45.0, 70.0):
        c = radial_shortening(ef)
        assert abs((1 - (1 - c) ** 2 * (1 - 0.5 * c)) * 100 - ef) < 0.01
    assert contraction(0.0, 0.35) == 0 and abs(contraction(0.35, 0.35) - 1) < 1e-9
    assert 0 <= min(contraction(t / 50, 0.35) for t in range(50))


def test_hcm_septum_is_thicker_than_free_wall():
    p = sample_patient(0, 1, pathology="hcm")
    ph = Phantom(p)
    w = ph.wall_field(np.array([0.0, 180.0]), np.array([-0.35, -0.35]), np.zeros(2))
    assert abs(w[0] - p.septal_mm) < 0.5 and abs(w[1] - p.wall_mm) < 0.5
