"""One synthetic patient: pathology, labels, heart parameters, scanner habits and fake PHI.

    p = sample_patient(seed=0, index=17)        # deterministic in (seed, index)
    p.pathology, p.labels(), p.lv_edd_mm, p.phi

Pathologies (`MIX` gives the cohort's proportions): ``normal``, ``dcm`` (dilated, no
LGE), ``nicm`` (non-ischemic cardiomyopathy with mid-wall fibrosis), ``icm`` (prior infarct
in one coronary territory), ``hcm``, ``amyloid``, ``rv`` (isolated RV dilation).
Co-morbidities: ``rv_dilation`` (with dcm, nicm, icm), ``rv_dysfunction`` (a reduced RV
of normal size, with dcm, nicm, icm) and ``effusion``.  Mitral regurgitation (`mr`, a grade
of `MR_GRADES`; `MR_RATES` per pathology) is seen only on cine long-axis views in systole:
the SAX stack lies below the atria, and LGE images no flow.  The binary findings a reader takes
from the measured values (LV/RV dysfunction and dilation, hypertrophy, LGE, effusion) are
`cmr_ray.synth.findings`'s, labelled by thresholds, not by the pathology.

Labels (see `LABELS`): the paper's binary nicm/icm/amyl/hcm and an ACDC-style class.
nicm = 1 for dcm and nicm (both non-ischemic cardiomyopathies); amyloid maps to ACDC
HCM (concentric thickening, the nearest ACDC class); ACDC follows the primary pathology,
so ICM with RV dilation stays MINF.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

MIX = {"normal": 0.20, "dcm": 0.13, "nicm": 0.15, "icm": 0.20, "hcm": 0.12, "amyloid": 0.10, "rv": 0.10}
# pathology -> (nicm, icm, amyl, hcm, acdc)
LABELS = {
    "normal": (0, 0, 0, 0, "NOR"),
    "dcm": (1, 0, 0, 0, "DCM"),
    "nicm": (1, 0, 0, 0, "DCM"),
    "icm": (0, 1, 0, 0, "MINF"),
    "hcm": (0, 0, 0, 1, "HCM"),
    "amyloid": (0, 0, 1, 0, "HCM"),
    "rv": (0, 0, 0, 0, "RV"),
}
TERRITORIES = ("LAD", "LCx", "RCA")
LEVELS = ("basal", "mid", "apical")  # thirds of the LV long axis, as the AHA segments group them
# contiguous runs of levels an infarct spans, and how often, per territory: the LAD's
# infarcts reach the apex, the LCx's and RCA's the base (Cerqueira et al. 2002, AHA 17-segment model)
SCAR_LEVELS = {
    "LAD": {("mid", "apical"): 0.4, ("apical",): 0.25, ("basal", "mid", "apical"): 0.2, ("mid",): 0.15},
    "LCx": {("basal", "mid"): 0.4, ("basal",): 0.25, ("mid",): 0.2, ("basal", "mid", "apical"): 0.15},
    "RCA": {("basal", "mid"): 0.4, ("basal",): 0.25, ("mid",): 0.2, ("basal", "mid", "apical"): 0.15},
}
MR_GRADES = ("none", "mild", "moderate", "severe")
# pathology -> chance of mitral regurgitation: functional (a dilated, poorly contracting LV
# pulls the leaflets apart) in dcm/nicm/icm, with septal hypertrophy in hcm, in some amyloid,
# and primary (valve) disease in a few of the rest.  Grade weights mild / moderate / severe.
MR_RATES = {"normal": 0.06, "dcm": 0.55, "nicm": 0.55, "icm": 0.45, "hcm": 0.30, "amyloid": 0.20, "rv": 0.06}
MR_WEIGHTS = (0.35, 0.45, 0.20)
VENDORS = {"GE": 0.35, "Siemens": 0.30, "Philips": 0.20, "UKB": 0.15}
# Acquisition sites (issue 20): what differs between the default cohort's hospital and
# another one.  `mix` and `vendors` are the draw tables above; `p_1p5t` the chance of a
# 1.5 T scanner (UK Biobank is always 1.5 T); `fov_mm` and `noise` the ranges drawn;
# `matrix_scale` scales the protocol's pixel matrix (rounded to a multiple of 8) and
# `thickness_mm` replaces the protocol's slice thickness (None: the protocol's); `report` the
# report style (`cmr_ray.synth.report.restyle`).  The internal site draws exactly as the
# cohort always has (same numbers, same order), so its output is unchanged.
SITES = {
    "internal": dict(mix=MIX, vendors=VENDORS, p_1p5t=0.6, fov_mm=(180, 240), noise=(0.015, 0.05),
                     matrix_scale=1.0, thickness_mm=None, report="internal"),
    # a 3 T-heavy Philips hospital with a coarser matrix over a wider field of view, noisier
    # images, and more coronary disease and normal studies among its referrals
    "external": dict(mix={"normal": 0.30, "dcm": 0.08, "nicm": 0.10, "icm": 0.28, "hcm": 0.08, "amyloid": 0.06,
                          "rv": 0.10},
                     vendors={"GE": 0.10, "Siemens": 0.25, "Philips": 0.65, "UKB": 0.0}, p_1p5t=0.25,
                     fov_mm=(200, 260), noise=(0.03, 0.07), matrix_scale=0.84, thickness_mm=10.0, report="external"),
}
COMPRESSIONS = ("rle", "jpeg2000", "jpegls")

_FIRST = {
    "M": ["Thaddeus", "Orrin", "Lazlo", "Ezekiel", "Barnaby", "Casimir", "Ignatius", "Leopold",
          "Alaric", "Fitzgerald", "Cornelius", "Evander", "Octavian", "Percival", "Quentin", "Rupert"],
    "F": ["Odalys", "Perpetua", "Wilhelmina", "Clementine", "Isolde", "Marisol", "Philippa", "Ottilie",
          "Seraphina", "Henrietta", "Ysolde", "Euphemia", "Rosalind", "Theodora", "Winifred", "Zenobia"],
}
_LAST = ["Quillfeather", "Abernathy", "Vantongeren", "Okonkwo-Reyes", "Thistlewood", "Marchbanks",
         "Fairweather", "Oyelaran", "Castellanos", "Przybylski", "Haverbrook", "Lindqvist", "Achterberg",
         "Nakashima", "Featherstonehaugh", "Delacroix-Hume", "Brightwater", "Kowalczyk", "Saltonstall",
         "Ravensworth", "Underhill", "Mbeki-Carr", "Ashdown", "Valdespino"]
_INSTITUTIONS = {
    "GE": ["St. Brendan Heart Institute", "Northgate University Hospital"],
    "Siemens": ["Lakeshore Memorial Cardiac Centre", "Harborview Imaging Institute"],
    "Philips": ["Ridgemont General Hospital", "Kingsbridge Heart Clinic"],
    "UKB": ["Stockfield Biobank Imaging Centre"],
}
_DOCTORS = ["Pemberton^Aurelia", "Szymanski^Horatio", "Adeyemi^Cordelia", "Lindgren^Magnus"]


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


@dataclass
class Patient:
    seed: int
    index: int
    pathology: str
    comorbidities: tuple
    sex: str
    age: int
    # scanner and acquisition
    vendor: str
    enhanced: bool
    compression: str  # "" (uncompressed) or one of COMPRESSIONS
    field_t: float
    heart_rate: float
    t_es: float  # end-systole as a fraction of the RR interval
    fov_mm: float
    noise: float  # Rician sigma relative to the blood-pool cine signal
    yaw: float
    pitch: float
    roll: float
    inplane: float
    lax_tilt: float
    ti_ms: int
    # left ventricle (end-diastole, mm)
    lv_edd_mm: float
    lv_length_mm: float  # endocardial semi-axis, base -> apex
    wall_mm: float  # remote wall thickness
    septal_mm: float  # maximal septal thickness (HCM), else = wall
    ef_target: float  # EF the remote myocardium would give; the reported EF is measured
    # disease specifics
    territory: str = ""
    scar_levels: tuple = ()  # the LEVELS an infarct spans (base to apex); seen on LGE SAX slices and LAX views
    transmurality: float = 0.0
    wma: float = 1.0  # contraction left in the infarct territory (1 = normal)
    lge_pattern: str = "none"
    lge: dict = field(default_factory=dict)
    mr: int = 0  # mitral regurgitation, an index into MR_GRADES (0: none)
    rv_scale: float = 1.0
    rv_contraction: float = 0.18
    atria_scale: float = 1.0
    effusion_mm: float = 0.0
    # body habitus (the chest around the heart): size relative to the reference chest,
    # subcutaneous fat, and where the heart sits in it (mm, patient x and y)
    body_scale: float = 1.0
    fat_mm: float = 12.0
    body_shift: tuple = (0.0, 0.0)
    phi: dict = field(default_factory=dict)
    site: str = "internal"  # a key of SITES: scanner habits and report style

    def labels(self) -> dict:
        nicm, icm, amyl, hcm, acdc = LABELS[self.pathology]
        return {"nicm": nicm, "icm": icm, "amyl": amyl, "hcm": hcm, "acdc": acdc}


def _pick(rng, table: dict) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _phi(rng, seed: int, index: int, sex: str, age: int, vendor: str) -> dict:
    first = _FIRST[sex][int(rng.integers(len(_FIRST[sex])))]
    last = _LAST[int(rng.integers(len(_LAST)))]
    study = dt.date(2012, 1, 1) + dt.timedelta(days=int(rng.integers(0, 12 * 365)))
    birth = study - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    # multipliers coprime with the modulus: distinct numbers for distinct indices
    mrn = (index * 7_654_321 + seed * 1_234_567 + 31_337) % 100_000_000
    acc = (index * 48_271 + seed * 9_176_543 + 777) % 1_000_000_000
    institutions = _INSTITUTIONS[vendor]
    return {
        "patient_name": f"{last}^{first}",
        "first_name": first,
        "last_name": last,
        "patient_id": f"{mrn:08d}",
        "accession_number": f"CMR{acc:09d}",
        "birth_date": birth.strftime("%Y%m%d"),
        "study_date": study.strftime("%Y%m%d"),
        "study_time": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        "institution": institutions[int(rng.integers(len(institutions)))],
        "referring_physician": _DOCTORS[int(rng.integers(len(_DOCTORS)))],
    }


def check_site(site: str) -> dict:
    if site not in SITES:
        raise ValueError(f"unknown site {site!r} (known: {', '.join(SITES)})")
    return SITES[site]


def sample_patient(seed: int, index: int, pathology: str | None = None, site: str = "internal") -> Patient:
    """Draw patient `index` of the cohort with `seed` (optionally forcing a pathology) at `site`."""
    where = check_site(site)
    rng = np.random.default_rng([seed, index, 1])
    path = pathology or _pick(rng, where["mix"])
    if path not in LABELS:
        raise ValueError(f"unknown pathology {path!r} (known: {', '.join(LABELS)})")
    sex = "M" if rng.random() < (0.62 if path in ("icm", "amyloid") else 0.5) else "F"
    age = int(np.clip(rng.normal({"icm": 66, "amyloid": 74, "hcm": 48, "rv": 45}.get(path, 55), 12), 18, 92))
    vendor = _pick(rng, where["vendors"])
    enhanced = vendor == "Philips" and rng.random() < 0.5
    compression = str(rng.choice(COMPRESSIONS, p=[0.5, 0.25, 0.25])) if rng.random() < 0.1 else ""
    p = Patient(
        seed=seed, index=index, pathology=path, comorbidities=(), sex=sex, age=age,
        vendor=vendor, enhanced=bool(enhanced), compression=compression,
        field_t=1.5 if vendor == "UKB" or rng.random() < where["p_1p5t"] else 3.0,
        heart_rate=_u(rng, 52, 92), t_es=_u(rng, 0.33, 0.42), fov_mm=_u(rng, *where["fov_mm"]),
        noise=_u(rng, *where["noise"]), yaw=_u(rng, -15, 15), pitch=_u(rng, -12, 12), roll=_u(rng, -20, 20),
        inplane=_u(rng, -15, 15), lax_tilt=_u(rng, -6, 6), ti_ms=int(rng.integers(20, 33)) * 10,
        lv_edd_mm=_u(rng, 45, 57) if sex == "M" else _u(rng, 41, 53), lv_length_mm=0.0,
        wall_mm=_u(rng, 6.5, 11.0), septal_mm=0.0,
        ef_target=_u(rng, 56, 72), site=site,
    )
    sphericity = _u(rng, 3.0, 3.5)  # long semi-axis / short radius
    if path in ("dcm", "nicm"):
        # DCM and NICM share one cine distribution: only LGE tells them apart
        p.lv_edd_mm, p.wall_mm, p.ef_target = _u(rng, 50, 68), _u(rng, 6.5, 10.0), _u(rng, 20, 45)
        sphericity = _u(rng, 2.5, 3.2)
    if path == "nicm":
        extra = rng.random() < 0.35
        p.lge_pattern = "midwall"
        p.lge = {"centre": _u(rng, 0.45, 0.55), "half_width": _u(rng, 0.30, 0.38),  # band >= 2 px at 64 px
                 "regions": ["septal", "inferolateral"] if extra else ["septal"], "patch": _u(rng, 0, 360)}
    if path == "icm":
        p.lv_edd_mm, p.ef_target = _u(rng, 46, 64), _u(rng, 30, 52)
        p.territory = TERRITORIES[int(rng.choice(3, p=[0.5, 0.2, 0.3]))]
        runs = SCAR_LEVELS[p.territory]
        extent = np.random.default_rng([seed, index, 2])  # its own stream: other draws stay as they were
        p.scar_levels = list(runs)[int(extent.choice(len(runs), p=np.array(list(runs.values()))))]
        p.transmurality = _u(rng, 0.5, 1.0)
        p.wma = _u(rng, 0.0, 0.25) if p.transmurality > 0.7 else _u(rng, 0.25, 0.55)
        p.lge_pattern = "transmural" if p.transmurality > 0.75 else "subendocardial"
    elif path == "hcm":
        p.lv_edd_mm, p.wall_mm, p.ef_target = _u(rng, 38, 50), _u(rng, 8.5, 11.5), _u(rng, 60, 78)
        p.septal_mm = _u(rng, 15, 26)  # the ESC 2014 criterion (findings.yaml: lv_hypertrophy)
        p.atria_scale = _u(rng, 1.05, 1.25)
        if rng.random() < 0.8:
            p.lge_pattern = "rv_insertion"
            p.lge = {"width_deg": _u(rng, 14, 22), "strength": _u(rng, 0.7, 1.0)}
    elif path == "amyloid":
        p.lv_edd_mm, p.wall_mm, p.ef_target = _u(rng, 38, 50), _u(rng, 13, 18), _u(rng, 35, 60)
        p.atria_scale = _u(rng, 1.2, 1.45)
        p.lge_pattern = "diffuse_subendocardial"
        p.lge = {"depth": _u(rng, 0.4, 0.65)}
        if rng.random() < 0.6:
            p.effusion_mm = _u(rng, 3, 7)
    elif path == "rv":
        p.rv_scale, p.rv_contraction = _u(rng, 1.3, 1.6), _u(rng, 0.07, 0.13)
        p.ef_target = _u(rng, 50, 66)
    # what varies between any two people, whatever their disease (its own stream: the draws
    # above stay as they were): chest size, fat, the heart's place in the chest, RV and atria
    body = np.random.default_rng([seed, index, 3])
    p.body_scale = float(body.uniform(0.95, 1.2) if sex == "M" else body.uniform(0.85, 1.1))
    p.fat_mm = float(body.uniform(5, 32))
    p.body_shift = (float(body.uniform(-15, 15)), float(body.uniform(-12, 12)))
    if p.rv_scale == 1.0:
        p.rv_scale = float(body.uniform(0.88, 1.12))
    if p.atria_scale == 1.0:
        p.atria_scale = float(body.uniform(0.9, 1.04))
    if p.rv_contraction == 0.18:  # healthy RV shortening varies too: nominal RVEF 48-68%
        p.rv_contraction = float(body.uniform(0.15, 0.21))
    p.septal_mm = p.septal_mm or p.wall_mm
    p.lv_length_mm = p.lv_edd_mm / 2 * sphericity
    comorb = []
    if path in ("dcm", "nicm", "icm") and rng.random() < {"dcm": 0.2, "nicm": 0.2, "icm": 0.15}[path]:
        comorb.append("rv_dilation")
        p.rv_scale, p.rv_contraction = _u(rng, 1.28, 1.5), _u(rng, 0.07, 0.13)
    elif path in ("dcm", "nicm", "icm"):
        rv = np.random.default_rng([seed, index, 6])  # its own stream: the draws above and below stay
        if rv.random() < 0.15:  # biventricular failure: a reduced RV of normal size
            comorb.append("rv_dysfunction")
            p.rv_contraction = float(rv.uniform(0.07, 0.13))
    valve = np.random.default_rng([seed, index, 7])  # its own stream: every other draw stays as it was
    if valve.random() < MR_RATES[path]:
        p.mr = 1 + int(valve.choice(3, p=MR_WEIGHTS))
    if p.effusion_mm == 0 and rng.random() < 0.05:
        p.effusion_mm = _u(rng, 3, 6)
    if p.effusion_mm > 0:
        comorb.append("effusion")
    p.comorbidities = tuple(comorb)
    p.phi = _phi(rng, seed, index, sex, age, vendor)
    return p
