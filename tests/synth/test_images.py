"""The pixels agree with the labels: EF measured on the cine SAX stack, LGE where the mask says.

EF is measured from the written pixels alone, apart from where to start: the LV blood
pool of each slice and phase is the connected region brighter than 0.6 x that slice's
end-diastolic blood signal, grown from the point where the LV long axis (a generating
parameter) crosses the slice; volumes are disc sums over the stack.
"""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.synth.phantom import TERRITORY, Phantom
from tests.synth.conftest import ZOO_FORMATS, frames, pixels_of, plane_of, read_study, series_by_key

LGE_VIEWS = ("lge_sax", "lge_2ch", "lge_3ch", "lge_4ch")


def _grow(mask: np.ndarray, seed) -> np.ndarray:
    region = np.zeros_like(mask)
    i, j = seed
    if not mask[i, j]:
        return region
    region[i, j] = True
    while True:
        g = region.copy()
        g[1:] |= region[:-1]
        g[:-1] |= region[1:]
        g[:, 1:] |= region[:, :-1]
        g[:, :-1] |= region[:, 1:]
        g &= mask
        if (g == region).all():
            return region
        region = g


def _axis_pixel(frame, plane):
    """Where the LV long axis crosses the plane, as (row, column)."""
    n = plane.normal
    lam = n @ (plane.origin - frame.origin) / (n @ frame.u)
    r, c = plane.project(frame.origin + lam * frame.u)
    return int(round(r)), int(round(c))


def measured_ef(p, study_dir) -> float:
    ph = Phantom(p)
    frs = frames(series_by_key(read_study(study_dir, pixels=True), p)["cine_sax"])
    n = plane_of(frs[0]).normal
    levels = sorted({round(float(f["ipp"] @ n), 3) for f in frs})
    spacing = abs(levels[1] - levels[0])
    volume = {}
    blood = {}
    for f in sorted(frs, key=lambda f: f["trigger"]):
        plane, img = plane_of(f), pixels_of(f)
        level = round(float(f["ipp"] @ n), 3)
        seed = _axis_pixel(ph.frame, plane)
        if level not in blood:  # first (end-diastolic) phase of this slice
            blood[level] = float(np.median(img[seed[0] - 1:seed[0] + 2, seed[1] - 1:seed[1] + 2]))
        area = _grow(img > 0.6 * blood[level], seed).sum() * f["spacing"][0] * f["spacing"][1]
        volume[f["trigger"]] = volume.get(f["trigger"], 0.0) + area * spacing
    v = np.array(list(volume.values()))
    return 100.0 * (1.0 - v.min() / v.max())


@pytest.mark.parametrize("pathology", sorted(ZOO_FORMATS))
def test_ef_from_pixels_matches_the_report(zoo, pathology):
    p, r, study_dir = zoo[pathology]
    ef = measured_ef(p, study_dir)
    assert abs(ef - r["labels"]["ef"]) <= 5.0, (pathology, ef, r["labels"]["ef"])
    assert f"{r['labels']['ef']}%" in r["report"]


def test_ef_spans_the_diseases(zoo):
    ef = {k: v[1]["labels"]["ef"] for k, v in zoo.items()}
    assert ef["dcm"] < 45 and ef["nicm"] < 50 and ef["hcm"] > 55 and ef["normal"] >= 50


def _lge_stats(p, study_dir, factor: int = 1):
    """Mean LGE signal inside the scar mask, in remote myocardium and in the LV blood pool,
    over every LGE image (optionally after factor x factor block averaging)."""
    ph = Phantom(p)
    by_key = series_by_key(read_study(study_dir, pixels=True), p)
    acc = {"scar": [], "remote": [], "blood": [], "myo": []}
    for key in LGE_VIEWS:
        for f in frames(by_key[key]):
            plane, img = plane_of(f), pixels_of(f)
            _, m = ph.render(plane, "lge", masks=True)
            if factor > 1:
                h = img.shape[0] // factor * factor
                down = lambda a: a[:h, :h].reshape(h // factor, factor, h // factor, factor).mean(axis=(1, 3))  # noqa: E731
                img, m = down(img), {k: down(v) for k, v in m.items()}
            acc["scar"].append(img[m["scar"] > 0.5])
            acc["remote"].append(img[m["remote"] > 0.9])
            acc["blood"].append(img[m["lv_cavity"] > 0.99])
            acc["myo"].append(img[m["lv_myo"] > 0.9])
    return {k: np.concatenate(v) for k, v in acc.items()}


@pytest.mark.parametrize("pathology", ["icm", "nicm", "hcm", "amyloid"])
def test_lge_pattern_is_where_the_mask_says(zoo, pathology):
    p, r, study_dir = zoo[pathology]
    assert p.lge_pattern != "none"
    s = _lge_stats(p, study_dir)
    assert s["scar"].size >= 15, "scar too small to see"
    assert s["scar"].mean() > 2.5 * s["remote"].mean(), (s["scar"].mean(), s["remote"].mean())
    assert s["scar"].mean() > s["blood"].mean()
    # still visible after halving the resolution (96 -> 48 px, coarser than the 64 px store)
    d = _lge_stats(p, study_dir, factor=2)
    assert d["scar"].size >= 4 and d["scar"].mean() > 2.0 * d["remote"].mean()
    if pathology == "amyloid":  # dark blood pool, poorly nulled myocardium
        assert s["blood"].mean() < 0.5 * s["scar"].mean() and s["remote"].mean() > 0.1 * s["scar"].mean()
    assert "enhancement" in r["report"] or "LGE" in r["report"]


@pytest.mark.parametrize("pathology", ["normal", "dcm", "rv"])
def test_no_lge_means_nulled_myocardium(zoo, pathology):
    p, r, study_dir = zoo[pathology]
    s = _lge_stats(p, study_dir)
    assert s["scar"].size == 0
    assert s["myo"].mean() < 0.35 * s["blood"].mean()
    assert "no late gadolinium enhancement" in r["report"].lower() or "no myocardial late gadolinium" in r["report"].lower() \
        or "no evidence of infarction or fibrosis" in r["report"].lower()


def test_icm_scar_lies_in_its_territory(zoo):
    p, r, study_dir = zoo["icm"]
    ph = Phantom(p)
    centre, half, _, _ = TERRITORY[p.territory]
    by_key = series_by_key(read_study(study_dir, pixels=True), p)
    vals, angles = [], []
    for f in frames(by_key["lge_sax"]):
        plane, img = plane_of(f), pixels_of(f)
        h = ph.frame.to_heart(plane.points().reshape(-1, 3))
        if h[0, 2] / ph.L0 < -0.65:  # apical cap: the whole ring belongs to the LAD
            continue
        _, m = ph.render(plane, "lge", masks=True)
        myo = (m["lv_myo"] > 0.9).ravel()
        vals.append(img.ravel()[myo])
        angles.append(np.degrees(np.arctan2(h[myo, 1], h[myo, 0])) % 360)
    v, a = np.concatenate(vals), np.concatenate(angles)
    a = a[v > 0.5 * v.max()]  # bright myocardium
    off = np.abs((a - centre + 180) % 360 - 180)
    assert a.size > 10 and np.mean(off <= half + 15) > 0.9
    assert p.territory in r["report"]


@pytest.mark.parametrize("territory,levels", [("RCA", ("basal",)), ("LAD", ("mid", "apical"))])
def test_infarct_spans_its_own_levels_and_the_report_names_them(territory, levels):
    """Issue 14: an infarct's extent along the long axis is the patient's own and the
    impression states it, so seeing it takes the LGE SAX slices at those levels."""
    import numpy.random as npr

    from cmr_ray.synth.geometry import sax_planes
    from cmr_ray.synth.patients import sample_patient
    from cmr_ray.synth.phantom import LEVEL_Z
    from cmr_ray.synth.protocol import sax_levels
    from cmr_ray.synth.report import write_report

    p = sample_patient(3, 0, pathology="icm")
    p.territory, p.transmurality, p.lge_pattern, p.scar_levels = territory, 0.9, "transmural", levels
    ph = Phantom(p)
    heights = sax_levels(ph, 10)
    inside, outside = [], []
    for plane, z in zip(sax_planes(ph.frame, heights, 0.3 * ph.R0, p.fov_mm, 96, p.inplane), heights):
        img, m = ph.render(plane, "lge", masks=True)
        myo = m["lv_myo"] > 0.9
        bright = float((img[myo] > 0.6).mean()) if myo.any() else 0.0
        zn = z / ph.L0
        level = next(name for name, (lo, hi) in LEVEL_Z.items() if lo - 1e-9 <= zn <= hi + 1e-9)
        near_edge = any(abs(zn - edge) < 0.08 for name in levels for edge in LEVEL_Z[name])
        if level in levels and not near_edge:
            inside.append(bright)
        elif level not in levels and not near_edge:
            outside.append(bright)
    assert inside and outside
    assert min(inside) > 0.05 and max(outside) < 0.01, (inside, outside)
    measured = {"ef": 40, "lv_edd_mm": 60.0, "wall_mm": 9.0, "lv_edv_ml": 180.0}
    text, _ = write_report(p, measured, npr.default_rng(0))
    impression = text.split("mpression")[-1] if "mpression" in text else text.split("IMPRESSION")[-1]
    span = levels[0] if len(levels) == 1 else f"{levels[0]} to {levels[-1]}"
    assert f"{span} " in impression and territory in impression


def test_atrial_enlargement_is_in_the_impression():
    """Seen on long-axis views only: the impression says it when the atria are enlarged."""
    import numpy.random as npr

    from cmr_ray.synth.patients import sample_patient
    from cmr_ray.synth.report import write_report

    measured = {"ef": 60, "lv_edd_mm": 45.0, "wall_mm": 15.0, "lv_edv_ml": 110.0}
    p = sample_patient(3, 1, pathology="amyloid")
    p.atria_scale = 1.3
    assert "Biatrial enlargement" in write_report(p, measured, npr.default_rng(0))[0].split("IMPRESSION")[-1].split("mpression")[-1]
    p.atria_scale = 1.0
    assert "atrial enlargement" not in write_report(p, measured, npr.default_rng(0))[0]


def test_mitral_regurgitation_shows_on_cine_long_axis_in_systole_only():
    """The jet darkens the LA on cine long-axis planes while the valve leaks (systole and
    isovolumic relaxation) and nowhere else: the SAX stack lies below the atria, LGE images
    no flow, and diastole has no regurgitant jet.  A higher grade darkens more of the LA."""
    from dataclasses import replace

    from cmr_ray.synth.patients import sample_patient
    from cmr_ray.synth.phantom import MR_LATE, mr_flow
    from cmr_ray.synth.protocol import study_protocol

    base = sample_patient(0, 5, pathology="nicm")
    specs = {s.key: s for s in study_protocol(base, Phantom(base), "small", np.random.default_rng(0))}
    systole, diastole = 0.5 * base.t_es, base.t_es + MR_LATE + 0.1
    assert mr_flow(systole, base.t_es) == 1.0 and mr_flow(diastole, base.t_es) == 0.0

    def image(grade, key, seq, t, index=0):
        return Phantom(replace(base, mr=grade)).render(specs[key].planes[index], seq, t=t)[0]

    dark = {}
    for key in ("cine_4ch", "cine_2ch", "cine_3ch"):
        none, moderate = image(0, key, "cine", systole), image(2, key, "cine", systole)
        assert (moderate <= none + 1e-12).all()  # it only darkens
        dark[key] = int((none - moderate > 0.3).sum())
        assert dark[key] >= 10, (key, dark[key])  # a visible void, not a pixel
        assert (none - image(3, key, "cine", systole) > 0.3).sum() > dark[key]  # severe reaches further
        np.testing.assert_array_equal(image(0, key, "cine", diastole), image(2, key, "cine", diastole))
    for key, seq in (("cine_sax", "cine"), ("lge_sax", "lge"), ("lge_4ch", "lge"), ("lge_2ch", "lge")):
        for index in range(len(specs[key].planes)):
            np.testing.assert_array_equal(image(0, key, seq, systole, index), image(3, key, seq, systole, index))


def test_mitral_regurgitation_in_the_report_and_the_cohort():
    """Findings always state the grade; the impression states moderate or severe MR always
    and mild MR about half the time; no MR reads as no significant regurgitation.  The
    draw follows `MR_RATES`."""
    from dataclasses import replace

    import numpy.random as npr

    from cmr_ray.synth.patients import MR_RATES, sample_patient
    from cmr_ray.synth.report import write_report

    measured = {"ef": 35, "lv_edd_mm": 64.0, "wall_mm": 8.0, "lv_edv_ml": 230.0}
    p = sample_patient(0, 5, pathology="dcm")

    def impression(q):
        text = write_report(q, measured, npr.default_rng(0))[0]
        return text, text.split("IMPRESSION")[-1].split("mpression")[-1]

    text, imp = impression(replace(p, mr=0))
    assert "No significant valvular regurgitation." in text and "mitral" not in text
    text, imp = impression(replace(p, mr=2))
    assert "There is moderate functional mitral regurgitation" in text and "Moderate functional mitral regurgitation" in imp
    assert "Severe functional mitral regurgitation" in impression(replace(p, mr=3))[1]
    mild = [replace(sample_patient(0, i, pathology="hcm"), mr=1) for i in range(200)]
    said = sum("Mild mitral regurgitation" in impression(q)[1] for q in mild)
    assert all("There is mild mitral regurgitation" in impression(q)[0] for q in mild[:5])
    assert 70 <= said <= 130, said

    patients = [sample_patient(1, i) for i in range(3000)]
    for path, rate in MR_RATES.items():
        group = [q for q in patients if q.pathology == path]
        got = np.mean([q.mr > 0 for q in group])
        assert abs(got - rate) < 3 * np.sqrt(rate * (1 - rate) / len(group)) + 0.01, (path, got, rate)
