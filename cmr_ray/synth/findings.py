"""Binary findings from what a reader measures on a study, thresholds from findings.yaml.

    from cmr_ray.synth.findings import FINDINGS, finding_labels, measured_values
    m = measured_values(p, {"ef": 42, "lv_edd_mm": 61.3, "wall_mm": 9.0})
    finding_labels(m, p.sex)       # {"lv_systolic_dysfunction": 1, "lv_dilation": 1, ...}

`measured_values` completes a study's readings the way its report prints them (whole mm,
whole %): the LV from the cine SAX stack (`cohort.measure_lv`), the RV's nominal basal
diameter and RVEF (the phantom draws the RV relative to a reference RV: findings.yaml,
`rv_reference`), the pericardial fluid separation and the LGE pattern.  A finding is the
measured value against its threshold (findings.yaml names the source of each), never the
pathology name, so a normal woman with a 53 mm LV has `lv_dilation` and an amyloid heart
with 14 mm walls has no `lv_hypertrophy`.  `omit_rate(name)` is how often the impression
leaves a positive finding out (the findings section always states it).
"""
from __future__ import annotations

import functools
import operator
from importlib import resources

import yaml

OPS = {"<": operator.lt, ">": operator.gt, ">=": operator.ge, "!=": operator.ne}


@functools.lru_cache(maxsize=1)
def spec() -> dict:
    """findings.yaml, checked: every finding has measure, op, threshold, omit and source."""
    text = resources.files("cmr_ray.synth").joinpath("findings.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    for name, f in data["findings"].items():
        missing = [k for k in ("measure", "op", "threshold", "omit", "source") if k not in f]
        if missing or f["op"] not in OPS:
            raise ValueError(f"findings.yaml: finding {name!r} lacks {missing} or has an unknown op {f.get('op')!r}")
    return data


FINDINGS: tuple[str, ...] = tuple(spec()["findings"])


def threshold(name: str, sex: str = "M"):
    t = spec()["findings"][name]["threshold"]
    return t[sex] if isinstance(t, dict) else t


def positive(name: str, value, sex: str = "M") -> int | None:
    """1 when `value` crosses the finding's threshold, 0 when not, None when unknown."""
    if value is None or value != value:
        return None
    f = spec()["findings"][name]
    return int(OPS[f["op"]](value, threshold(name, sex)))


def omit_rate(name: str) -> float:
    return float(spec()["findings"][name]["omit"])


def nominal_rv(rv_scale: float, rv_contraction: float) -> dict:
    """The reader's RV values for the phantom's RV: basal diameter (mm) and RVEF (%), whole units."""
    ref = spec()["rv_reference"]
    return {"rv_basal_mm": int(round(ref["basal_diameter_mm"] * rv_scale)),
            "rvef": int(round(ref["ejection_fraction_pct"] * rv_contraction / ref["radial_shortening"]))}


def measured_values(p, lv: dict) -> dict:
    """Every reading the findings use, as the report prints it.  `lv` holds the LV measured
    on the images (`ef` at least; `lv_edd_mm` and `wall_mm` default to the phantom's); the
    rest of `lv` (volumes) passes through."""
    out = dict(lv)
    out["ef"] = int(round(lv["ef"]))
    out["lv_edd_mm"] = int(round(lv.get("lv_edd_mm", p.lv_edd_mm)))
    out["wall_mm"] = int(round(lv.get("wall_mm", max(p.wall_mm, p.septal_mm))))
    for k, v in nominal_rv(p.rv_scale, p.rv_contraction).items():
        out.setdefault(k, v)
    out.setdefault("effusion_mm", int(round(p.effusion_mm)))
    out.setdefault("lge_pattern", p.lge_pattern)
    return out


def finding_labels(measured: dict, sex: str) -> dict[str, int | None]:
    """{finding: 0 | 1 | None} from `measured_values` output (None where a value is missing)."""
    return {name: positive(name, measured.get(f["measure"]), sex) for name, f in spec()["findings"].items()}
