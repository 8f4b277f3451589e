"""What a scanner acquires for one study: the series, their planes and their names.

    specs = study_protocol(patient, phantom, protocol="small", rng=rng)
    [(s.key, s.number, s.description) for s in specs]

Series keys: ``cine_sax``, ``cine_2ch``, ``cine_3ch``, ``cine_4ch``, ``lge_sax``, ``lge_2ch``,
``lge_3ch``, ``lge_4ch`` (what the pipeline uses) and the distractors ``loc`` (3-plane
localizer), ``t1`` (native T1 map, 1-3 mid short-axis slices) and ``flow`` (through-plane
phase contrast above the aortic valve).  SeriesDescription follows each vendor's habits;
the strings come from real archives (shared/data/cmr_series_descriptions), keeping only
those whose sequence and view a reasonable reader gets right.  UK Biobank had no
contrast, so its LGE series borrow Siemens names; its SAX cine is one series here (the
real archive splits it into one series per slice: ``CINE_segmented_SAX_b1`` ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cmr_ray.synth.geometry import Plane, lax_plane, localizer_planes, sax_planes
from cmr_ray.synth.patients import SITES, Patient
from cmr_ray.synth.phantom import Phantom

PROTOCOLS = {  # the acquisition protocols: data.synth_protocol, `cmr-ray synth --protocol`
    # size: pixels; slices: SAX stack; phases: cine; fov_scale: x patient.fov_mm
    "small": dict(size=96, slices=10, phases=12, flow_phases=6, t1_slices=1, fov_scale=1.0, thickness=8.0),
    "paper": dict(size=256, slices=12, phases=25, flow_phases=20, t1_slices=3, fov_scale=1.5, thickness=7.0),
}
VIEWS = ("sax", "2ch", "3ch", "4ch")

NAMES = {  # vendor -> kind -> list of alternatives; cine/lge alternatives are (sax, 2ch, 3ch, 4ch)
    "GE": {
        "loc": ["3-pl_Loc_Fiesta", "3PL_SSFSE_LOC"],
        "cine": [("SAX_FIESTA_BH", "2CH_FIESTA_BH", "3CH_FIESTA_BH", "4CH_FIESTA_BH"),
                 ("SAX_FIESTA_BH_Asset", "LV2CH_FIESTA_BH", "LV3CH_FIESTA_BH", "4CH_FIESTA_BH_Asset")],
        "lge": [("SAX_IrP-FGRE_TI={ti}", "2CH_IrP-FGRE_TI={ti}", "3CH_IrP-FGRE_TI={ti}", "4CH_IrP-FGRE_TI={ti}"),
                ("MAG:DE_SA_2D_MDE", "MAG:DE_2CH_2D_MDE", "MAG:DE_3CH_2D_MDE", "MAG:DE_4CH_2D_MDE"),
                ("SAX_DE_TI_{ti}_BH", "2CH_DE_TI_{ti}_BH", "3CH_DE_TI_{ti}_BH", "4CH_DE_TI_{ti}_BH")],
        "t1": ["SAX-mid_T1Map_ARC_PRE_BH", "SMART1Map_SAX-mid_T1Map_ARC_PRE_BH"],
        "flow": ["Ao_FastPC_V=150_BH", "Ao_FastPC_V=250_BH"],
    },
    "Siemens": {
        "loc": ["localizer", "AAHeart_Scout"],
        "cine": [("short_axis_stack_cine_trufi_retro", "2chamber_cine_trufi_retro", "3chamber_cine_trufi_retro", "4_chamber_cine_trufi_retro"),
                 ("tfisp_cine_sax", "tfisp_cine_2_chamber", "tfisp_cine_3_chamber", "tfisp_cine_4_chamber"),
                 ("Trufi_Cine_SAX", "Trufi_Cine_VLA", "Trufi_Cine_3CH", "Trufi_Cine_HLA")],
        "lge": [("tfi_psir_single-shot_short_axis_stack_PSIR", "tfi_psir_single-shot_2_chamber_PSIR",
                 "tfi_psir_single-shot_3_chamber_PSIR", "tfi_psir_single-shot_4_chamber_PSIR"),
                ("psir_seg_SAX_PSIR", "psir_seg_2_CHAMBER_PSIR", "psir_seg_3_CHAMBER_PSIR", "psir_seg_4_CHAMBER_PSIR")],
        "t1": ["T1Map_LongT1_SA_MOCO", "MOLLI_SAX_mid_T1MAP"],
        "flow": ["aortic_flow_150_tp_retro_bh_P"],
    },
    "Philips": {
        "loc": ["SURVEY_BH", "Survey"],
        "cine": [("bFFE_BH_SA", "bFFE_BH_VLA", "bFFE_BH_LVOT", "bFFE_BH_4CH"),
                 ("sBTFE_BH_SA", "sBTFE_BH_2CH", "sBTFE_BH_3CH", "sBTFE_BH_4CH"),
                 ("CINE_SA", "CINE_VLA", "CINE_LVOT", "CINE_HLA")],
        "lge": [("PSIR_SA_LGE", "PSIR_2CH_LGE", "PSIR_3CH_LGE", "PSIR_4CH_LGE"),
                ("PS:LGE_SA_stack", "PS:LGE_2CH", "PS:LGE_3CH", "PS:LGE_4CH")],
        "t1": ["T1_MOLLI_MAP_native_PRE"],
        "flow": ["AORTA_sQFLOW_BH"],
    },
    "UKB": {
        "loc": ["Localizer"],
        "cine": [("CINE_segmented_SAX", "CINE_segmented_LAX_2Ch", "CINE_segmented_LAX_3Ch", "CINE_segmented_LAX_4Ch")],
        "lge": [("tfi_psir_single-shot_short_axis_stack_PSIR", "tfi_psir_single-shot_2_chamber_PSIR",
                 "tfi_psir_single-shot_3_chamber_PSIR", "tfi_psir_single-shot_4_chamber_PSIR")],
        "t1": ["ShMOLLI_192i_SAX_b2s_T1MAP"],
        "flow": ["flow_250_tp_AoV_bh_ePAT@c_P"],
    },
}
EQUIPMENT = {
    "GE": ("GE MEDICAL SYSTEMS", ["SIGNA Artist", "Signa HDxt", "DISCOVERY MR750"]),
    "Siemens": ("SIEMENS", ["Avanto", "Aera", "Skyra"]),
    "Philips": ("Philips Medical Systems", ["Ingenia", "Achieva"]),
    "UKB": ("SIEMENS", ["Aera"]),
}


@dataclass
class SeriesSpec:
    key: str  # cine_sax ... lge_4ch, loc, t1, flow
    sequence: str  # what the phantom renders: cine, lge, t1, loc, flow
    description: str
    planes: list[Plane]
    phases: int
    thickness: float
    number: int = 0
    spacing_between: float | None = None
    image_type: tuple = ("ORIGINAL", "PRIMARY", "M", "NONE")
    scanning: tuple = ("GR", "SS")  # ScanningSequence, SequenceVariant
    tr_te_flip: tuple = (3.0, 1.5, 50.0)
    inversion_ms: float | None = None
    slope: float = 1.0
    intercept: float = 0.0
    enhanced: bool = False
    extra: dict = field(default_factory=dict)


def _choice(rng, items):
    return items[int(rng.integers(len(items)))]


def sax_levels(ph: Phantom, slices: int) -> np.ndarray:
    """Heart-frame heights of the SAX stack, base (just below the valve plane) to apex."""
    return np.linspace(-6.0, -(ph.L0 - 10.0), slices)


def matrix_size(size: int, site: str = "internal") -> int:
    """The pixel matrix of a protocol's `size` at `site` (`patients.SITES` matrix_scale, to a multiple of 8)."""
    scale = SITES[site]["matrix_scale"]
    return size if scale == 1.0 else max(16, int(round(size * scale / 8)) * 8)


def study_protocol(p: Patient, ph: Phantom, protocol: str, rng: np.random.Generator) -> list[SeriesSpec]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    cfg = PROTOCOLS[protocol]
    size, fov, thick = matrix_size(cfg["size"], p.site), p.fov_mm * cfg["fov_scale"], cfg["thickness"]
    thick = SITES[p.site]["thickness_mm"] or thick
    names = NAMES[p.vendor]
    cine_names, lge_names = _choice(rng, names["cine"]), _choice(rng, names["lge"])
    levels = sax_levels(ph, cfg["slices"])
    centre_x = 0.3 * ph.R0
    sax = sax_planes(ph.frame, levels, centre_x, fov, size, p.inplane)
    lax = {v: lax_plane(ph.frame, v, -0.45 * ph.L0, fov, size, p.lax_tilt) for v in ("2ch", "3ch", "4ch")}
    step = float(abs(levels[1] - levels[0]))
    psir = p.vendor in ("Siemens", "UKB") or "PSIR" in lge_names[0] or "PS:" in lge_names[0]
    ti = p.ti_ms
    cine_variant = ("GR", "SS\\SP") if p.vendor == "Siemens" else ("GR", "SS")
    specs = [SeriesSpec("loc", "loc", _choice(rng, names["loc"]), localizer_planes(ph.frame.to_patient([0, 0, -0.5 * ph.L0]), 380.0, size),
                        1, 10.0, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), tr_te_flip=(3.4, 1.4, 45.0))]
    for v, name in zip(("4ch", "2ch", "3ch"), (cine_names[3], cine_names[1], cine_names[2])):
        specs.append(SeriesSpec(f"cine_{v}", "cine", name, [lax[v]], cfg["phases"], thick, scanning=cine_variant))
    specs.append(SeriesSpec("cine_sax", "cine", cine_names[0], sax, cfg["phases"], thick, spacing_between=step, scanning=cine_variant))
    t1_levels = levels[[len(levels) // 2]] if cfg["t1_slices"] == 1 else levels[[1, len(levels) // 2, -2]]
    specs.append(SeriesSpec("t1", "t1", _choice(rng, names["t1"]), sax_planes(ph.frame, t1_levels, centre_x, fov, size, p.inplane),
                            1, 8.0, image_type=("DERIVED", "PRIMARY", "T1 MAP", "NONE"), tr_te_flip=(2.7, 1.1, 35.0)))
    flow_name = _choice(rng, names["flow"])
    venc = 250.0 if "250" in flow_name else 150.0
    flow_plane = sax_planes(ph.frame, [35.0], centre_x, fov, size, p.inplane)
    specs.append(SeriesSpec("flow", "flow", flow_name, flow_plane, cfg["flow_phases"], 6.0,
                            image_type=("ORIGINAL", "PRIMARY", "P", "NONE"), scanning=("GR", "SP"), tr_te_flip=(4.6, 2.6, 20.0),
                            slope=2 * venc / 4095.0, intercept=-venc, extra={"venc": venc}))
    lge_kw = dict(scanning=("GR\\IR", "SP\\OSP"), tr_te_flip=(6.0, 3.0, 25.0), inversion_ms=float(ti))
    if psir and p.vendor != "Philips":
        lge_kw.update(slope=2.0, intercept=-4096.0)
    specs.append(SeriesSpec("lge_sax", "lge", lge_names[0].format(ti=ti), sax, 1, thick, spacing_between=step, **lge_kw))
    for v, name in zip(("2ch", "3ch", "4ch"), lge_names[1:]):
        specs.append(SeriesSpec(f"lge_{v}", "lge", name.format(ti=ti), [lax[v]], 1, thick, **lge_kw))
    for n, s in enumerate(specs, start=1):
        s.number = {"Philips": n * 100 + 1, "Siemens": n + (n > 4) * 2}.get(p.vendor, n)
        if p.vendor == "Philips" and s.key != "flow":
            s.slope = float(np.round(rng.uniform(1.2, 3.2), 5))
        s.enhanced = p.enhanced and s.key[:4] in ("cine", "lge_")
    return specs
