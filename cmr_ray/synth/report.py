"""Report text for one study, in a cardiologist's voice, agreeing with the images.

    text, mentions = write_report(patient, measured, rng)

`measured` holds what a reader measured on the images (ef, lv_edv_ml, lv_edd_mm, wall_mm,
from the cine SAX stack; see cohort.measure_lv); `findings.measured_values` completes it
(RV, effusion, LGE) in the whole units the report prints.  The report has history,
technique, findings and an impression of numbered findings; headings, phrasing, negations
and order vary.  Some reports name the patient or give a date of birth or of the exam
(`mentions` lists every such string, for de-identification tests).  The impression always
gives the EF.

Findings (`cmr_ray.synth.findings`, thresholds and their sources in findings.yaml): the
findings section states every measured value and its grade; the impression states each
positive finding, except that it leaves one out at the finding's `omit` rate (10% for LV
and RV dilation, hypertrophy, RV dysfunction and effusion; never for the EF and LGE), and
never states a negative one as present.  Mitral regurgitation (`patients.MR_GRADES`, seen
on cine long-axis views only) is in the findings whenever present and in the impression
when moderate or severe, or half the time when mild (`MR_OMIT_MILD`).  The grades below
(LV size, EF, RV, effusion) are read from the same file, so the text and the labels cannot
disagree.

Report styles (`patients.SITES`' `report`): `restyle(text, "external")` rewrites a report
in another hospital's house style, the same facts in other words: other headings ("Reason
for referral:", "Sequences acquired:", "Results:", "Clinical impression:" over bulleted
items), abbreviations (LV, RV, "delayed enhancement" for late gadolinium enhancement),
other words ("enlarged" for dilated, "in keeping with" for consistent with, "pericardial
fluid collection" for pericardial effusion) and other units (diameters and thicknesses in
cm to one decimal, "%" spaced, field strength in tesla).  Names and dates are untouched, so
the PHI mentions stay as written.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np

from cmr_ray.synth import findings as fnd
from cmr_ray.synth.patients import MR_GRADES, Patient

TERRITORY_WALLS = {  # the walls each coronary territory supplies (without the levels)
    "LAD": "anterior wall and anteroseptum",
    "LCx": "anterolateral and inferolateral walls",
    "RCA": "inferior wall and inferoseptum",
}


def territory_walls(p: Patient) -> str:
    """Where an infarct lies, levels included: 'basal to mid inferior wall and inferoseptum'.
    The levels are the patient's own (patients.SCAR_LEVELS): seeing them takes the LGE SAX
    slices at those levels, or the long-axis views."""
    levels = p.scar_levels or ("mid", "apical")
    span = levels[0] if len(levels) == 1 else f"{levels[0]} to {levels[-1]}"
    walls = f"{span} {TERRITORY_WALLS[p.territory]}"
    return walls + (", and the apex" if p.territory == "LAD" and "apical" in levels else "")
INDICATION = {
    "normal": ["atypical chest pain", "palpitations", "abnormal ECG", "exertional dyspnea", "family history of cardiomyopathy"],
    "dcm": ["reduced ejection fraction on echocardiography", "new heart failure", "exertional dyspnea"],
    "nicm": ["reduced ejection fraction on echocardiography", "new heart failure", "ventricular ectopy"],
    "icm": ["known coronary artery disease, viability assessment", "prior myocardial infarction", "reduced ejection fraction on echocardiography"],
    "hcm": ["murmur and abnormal ECG", "family history of hypertrophic cardiomyopathy", "left ventricular hypertrophy on echocardiography"],
    "amyloid": ["heart failure with preserved ejection fraction, ?infiltrative cardiomyopathy", "left ventricular hypertrophy with low-voltage ECG"],
    "rv": ["right ventricular dilation on echocardiography", "palpitations", "evaluate for shunt"],
}


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _date(yyyymmdd: str, rng) -> str:
    d = dt.datetime.strptime(yyyymmdd, "%Y%m%d")
    return d.strftime(_pick(rng, ["%m/%d/%Y", "%d %B %Y", "%Y-%m-%d"]))


def _grades() -> dict:
    return fnd.spec()["grades"]


def lv_size(edd: float, sex: str) -> str:
    if not fnd.positive("lv_dilation", edd, sex):
        return "normal"
    upper, (mild, moderate) = fnd.threshold("lv_dilation", sex), _grades()["lv_dilation_steps_mm"]
    return "mildly dilated" if edd <= upper + mild else "moderately dilated" if edd <= upper + moderate else "severely dilated"


def ef_grade(ef: int) -> str:
    g = _grades()["lvef"]
    if ef >= g["hyperdynamic"]:
        return "hyperdynamic"
    if ef >= g["normal"]:
        return "normal"
    if not fnd.positive("lv_systolic_dysfunction", ef):
        return "low-normal"
    return ("mildly reduced" if ef >= g["mildly_reduced"] else "moderately reduced" if ef >= g["moderately_reduced"]
            else "severely reduced")


# rv_scale above which the RV reads as dilated (healthy hearts span 0.88-1.12): the nominal
# basal diameter (findings.nominal_rv) above the findings.yaml threshold
RV_DILATED = fnd.threshold("rv_dilation") / fnd.spec()["rv_reference"]["basal_diameter_mm"]


def _rv_grade(basal_mm: int) -> str:
    mild, moderate = _grades()["rv_dilation_steps_mm"]
    over = basal_mm - fnd.threshold("rv_dilation")
    return "mildly" if over <= mild else "moderately" if over <= moderate else "severely"


def _rv_function(rvef: int) -> str:
    return "mildly reduced" if rvef >= _grades()["rvef_mildly_reduced"] else "moderately reduced"


def _effusion_grade(mm: int) -> str:
    g = _grades()["effusion_mm"]
    return "small" if mm < g["small"] else "moderate" if mm <= g["moderate"] else "large"


def stated_findings(labels: dict, rng) -> dict[str, bool]:
    """Which positive findings the impression states: each is left out at its omit rate
    (one draw per finding, in findings.yaml's order, whatever the label)."""
    draws = {name: rng.random() for name in fnd.FINDINGS}
    return {name: bool(labels.get(name)) and draws[name] >= fnd.omit_rate(name) for name in fnd.FINDINGS}


def _lge_findings(p: Patient, rng) -> tuple[str, str | None]:
    """(findings sentence, impression sentence or None)."""
    pat = p.lge_pattern
    if pat in ("subendocardial", "transmural"):
        walls = territory_walls(p)
        depth = "transmural (>75%)" if pat == "transmural" else "subendocardial (<50%)" if p.transmurality < 0.55 else "subendocardial (50-75%)"
        viable = "non-viable" if pat == "transmural" else "likely viable"
        return (f"There is {depth} late gadolinium enhancement of the {walls}, in the {p.territory} territory, "
                f"consistent with prior infarction; the affected segments are {viable}.",
                f"{'Transmural' if pat == 'transmural' else 'Subendocardial'} infarct scar in the {p.territory} territory "
                f"({walls}), {viable}, consistent with ischemic cardiomyopathy.")
    if pat == "midwall":
        where = "basal to mid septum" + (" and inferolateral wall" if "inferolateral" in p.lge["regions"] else "")
        return (f"There is linear mid-wall late gadolinium enhancement in the {where}, sparing the subendocardium "
                f"(non-ischemic pattern).",
                f"Mid-wall fibrosis of the {where}, a non-ischemic pattern, consistent with non-ischemic cardiomyopathy.")
    if pat == "rv_insertion":
        return ("Patchy late gadolinium enhancement at the anterior and inferior right ventricular insertion points.",
                "Patchy LGE at the RV insertion points, as seen in hypertrophic cardiomyopathy.")
    if pat == "diffuse_subendocardial":
        return ("Diffuse circumferential subendocardial late gadolinium enhancement with difficulty nulling the "
                "myocardium and a dark blood pool.",
                "Diffuse subendocardial LGE with abnormal myocardial nulling and dark blood pool, highly suggestive of cardiac amyloidosis.")
    none = _pick(rng, ["No late gadolinium enhancement to suggest myocardial scar or fibrosis.",
                       "There is no myocardial late gadolinium enhancement.",
                       "No evidence of infarction or fibrosis on late gadolinium enhancement imaging."])
    return none, None


MR_OMIT_MILD = 0.5  # how often an impression leaves out mild mitral regurgitation (moderate or worse: never)


def _mr(p: Patient) -> tuple[str, str | None]:
    """(findings sentence, impression item or None) for the patient's mitral regurgitation.
    Read from the cine long-axis views (the jet into the LA in systole): the one finding that
    neither LGE nor any SAX slice shows.  The mild-omission draw has its own rng stream, so
    the rest of the report's wording is drawn as before."""
    if not p.mr:
        return "No significant valvular regurgitation.", None
    grade = MR_GRADES[p.mr]
    kind = "functional " if p.pathology in ("dcm", "nicm", "icm") else ""
    find = f"There is {grade} {kind}mitral regurgitation, a systolic jet into the left atrium on the long-axis cine images."
    said = p.mr > 1 or np.random.default_rng([p.seed, p.index, 8]).random() >= MR_OMIT_MILD
    return find, f"{grade.capitalize()} {kind}mitral regurgitation" if said else None


def write_report(p: Patient, m: dict, rng) -> tuple[str, list[str]]:
    phi, mentions = p.phi, []
    m = fnd.measured_values(p, m)
    labels = fnd.finding_labels(m, p.sex)
    stated = stated_findings(labels, rng)
    ef, edd, wall = m["ef"], m["lv_edd_mm"], m["wall_mm"]
    size, grade = lv_size(edd, p.sex), ef_grade(ef)
    man = "man" if p.sex == "M" else "woman"
    indication = _pick(rng, INDICATION[p.pathology])

    history = f"{p.age}-year-old {man} with {indication}."
    if rng.random() < 0.3:
        name = _pick(rng, [f"{phi['first_name']} {phi['last_name']}", f"{'Mr.' if p.sex == 'M' else 'Ms.'} {phi['last_name']}"])
        mentions.append(name)
        history = f"{name} is a {p.age}-year-old {man} referred with {indication}."
    if rng.random() < 0.15:
        dob = _date(phi["birth_date"], rng)
        mentions.append(dob)
        history += f" DOB {dob}."
    head = _pick(rng, ["CARDIAC MRI REPORT", "CMR WITH AND WITHOUT CONTRAST", "MRI HEART FUNCTION AND MORPHOLOGY WITH GADOLINIUM"])
    if rng.random() < 0.3:
        when = _date(phi["study_date"], rng)
        mentions.append(when)
        head += f"\nDate of exam: {when}"

    technique = (f"{p.field_t:g}T CMR. Cine SSFP imaging in short-axis and 2-, 3- and 4-chamber views. "
                 f"Native T1 mapping. Aortic phase-contrast flow. Late gadolinium enhancement imaging "
                 f"10 minutes after 0.15 mmol/kg gadobutrol (TI {p.ti_ms} ms).")

    hyp = labels["lv_hypertrophy"]
    septal = p.septal_mm > p.wall_mm + 2  # asymmetric: the septum is the thickest wall
    lv = [f"The left ventricle is {'normal in size' if size == 'normal' else size} (LVEDD {edd} mm, LVEDV {m['lv_edv_ml']:.0f} ml)."]
    if hyp and septal:
        lv.append(f"There is asymmetric septal hypertrophy with a maximal wall thickness of {wall} mm in the basal to mid anteroseptum.")
    elif hyp:
        lv.append(f"There is concentric left ventricular hypertrophy (maximal wall thickness {wall} mm).")
    elif wall >= _grades()["borderline_wall_mm"]:
        lv.append(_pick(rng, [f"Wall thickness is borderline increased (maximal {wall} mm), short of hypertrophy.",
                              f"Borderline wall thickness, maximal {wall} mm, without overt hypertrophy."]))
    else:
        lv.append(_pick(rng, [f"Wall thickness is normal (maximal {wall} mm).", f"Normal wall thickness, {wall} mm."]))
    if p.territory:
        motion = "akinesis" if p.wma < 0.25 else "hypokinesis"
        lv.append(f"There is {motion} of the {territory_walls(p)}.")
    elif labels["lv_systolic_dysfunction"]:
        lv.append("There is global hypokinesis without a regional wall motion abnormality.")
    else:
        lv.append(_pick(rng, ["No regional wall motion abnormality.", "Regional wall motion is normal."]))
    lv.append(f"Global systolic function is {grade}, with an ejection fraction of {ef}%.")

    rv_dil, rv_dys = labels["rv_dilation"], labels["rv_systolic_dysfunction"]
    rv_size = f"{_rv_grade(m['rv_basal_mm'])} dilated" if rv_dil else "normal in size"
    rv_fn = _rv_function(m["rvef"]) if rv_dys else "normal"
    if rv_dil or rv_dys:
        rv = (f"The right ventricle is {rv_size} (basal diameter {m['rv_basal_mm']} mm) with {rv_fn} systolic function "
              f"(RVEF {m['rvef']}%).")
    else:
        rv = _pick(rng, ["The right ventricle is normal in size and function.", "Normal right ventricular size and systolic function."])
    atria = ("Both atria are enlarged." if p.atria_scale > 1.2 else "The left atrium is mildly enlarged." if p.atria_scale > 1.04
             else _pick(rng, ["The atria are normal in size.", "Normal atrial size."]))
    eff = m["effusion_mm"]
    peri = (f"There is a {_effusion_grade(eff)} pericardial effusion ({eff} mm)." if labels["pericardial_effusion"]
            else _pick(rng, ["No pericardial effusion.", "The pericardium is normal."]))
    t1 = "Native myocardial T1 is elevated." if p.pathology == "amyloid" else "Native myocardial T1 is within normal limits."
    lge_find, lge_imp = _lge_findings(p, rng)
    mr_find, mr_imp = _mr(p)

    # impression: LV first, then disease findings in varying order; a positive finding the
    # impression leaves out (stated_findings) is neither stated nor denied
    if not (labels["lv_dilation"] or hyp) and grade == "normal":
        first = _pick(rng, [f"Normal left ventricular size, wall thickness and systolic function, EF {ef}%.",
                            f"The left ventricle is normal in size with normal systolic function (LVEF {ef}%)."])
    else:
        shown_hyp = hyp and stated["lv_hypertrophy"]
        hyper = (" with asymmetric septal hypertrophy" if shown_hyp and septal else " with concentric hypertrophy" if shown_hyp else "")
        if labels["lv_dilation"] and not stated["lv_dilation"]:
            first = _pick(rng, [f"The left ventricle{hyper} has {grade} systolic function, EF {ef}%.",
                                f"Left ventricle{hyper}: {grade} systolic function (LVEF {ef}%)."])
        else:
            desc = "normal in size" if size == "normal" else size
            adj = "Normal-sized" if size == "normal" else size.capitalize()
            first = _pick(rng, [f"The left ventricle is {desc}{hyper} and has {grade} systolic function, EF {ef}%.",
                                f"{adj} left ventricle{hyper}; {grade} systolic function (LVEF {ef}%)."])
    items = []
    if lge_imp:
        items.append(lge_imp)
    elif p.pathology == "dcm":
        items.append("No myocardial scar or fibrosis; findings are consistent with idiopathic dilated cardiomyopathy."
                     if labels["lv_dilation"] else  # a DCM whose LV measures normal: ESC 2016's HNDC
                     "No myocardial scar or fibrosis; findings are consistent with hypokinetic non-dilated cardiomyopathy.")
    elif p.pathology == "hcm":
        items.append(f"Asymmetric septal hypertrophy (maximal {wall} mm) consistent with hypertrophic cardiomyopathy, without LGE."
                     if stated["lv_hypertrophy"] else "Findings consistent with hypertrophic cardiomyopathy, without LGE.")
    say_dil, say_dys = stated["rv_dilation"], stated["rv_systolic_dysfunction"]
    if say_dil and say_dys:
        items.append(_pick(rng, [f"Right ventricle {rv_size} with {rv_fn} systolic function",
                                 f"{rv_size.capitalize()} right ventricle with {rv_fn} systolic function (RVEF {m['rvef']}%)"]))
    elif say_dil:
        items.append(_pick(rng, [f"Right ventricle {rv_size}", f"{rv_size.capitalize()} right ventricle (basal diameter {m['rv_basal_mm']} mm)"]))
    elif say_dys:
        items.append(_pick(rng, [f"{rv_fn.capitalize()} right ventricular systolic function (RVEF {m['rvef']}%)",
                                 f"Right ventricular systolic dysfunction, RVEF {m['rvef']}%"]))
    if stated["pericardial_effusion"]:
        g = _effusion_grade(eff)
        items.append(_pick(rng, [f"{g.capitalize()} pericardial effusion ({eff} mm)",
                                 f"{g.capitalize()} pericardial effusion, {eff} mm, without tamponade physiology"]))
    if mr_imp:
        items.append(mr_imp)
    if p.atria_scale > 1.04:  # seen on the long-axis views only: the SAX stack lies below the atria
        items.append("Biatrial enlargement" if p.atria_scale > 1.2 else "Mild left atrial enlargement")
    if p.pathology == "normal" or (not lge_imp and rng.random() < 0.5):
        items.append(_pick(rng, ["No late gadolinium enhancement", "No evidence of myocardial infarction, infiltration or fibrosis"]))
    order = list(rng.permutation(len(items)))
    items = [first] + [items[i] for i in order]
    if rng.random() < 0.12:  # PHI inside the impression: the text the store keeps, after scrubbing
        who = f"{'Mr.' if p.sex == 'M' else 'Ms.'} {phi['last_name']}"
        when = _date(phi["study_date"], rng)
        mentions += [who, when]
        items.append(f"Results discussed with {who} on {when}")
    elif rng.random() < 0.15:
        items.append("Findings discussed with the referring physician")
    style = int(rng.integers(3))
    heading = ["IMPRESSION:", "Impression:", "IMPRESSION"][style]
    mark = "." if rng.random() < 0.85 else ")"
    numbered = "\n".join(f"{k}{mark} {s.rstrip('.')}." for k, s in enumerate(items, start=1))

    findings = [" ".join(lv), rv, f"{atria} {mr_find}", peri, t1, lge_find]
    if rng.random() < 0.5:  # some readers report LGE before the chambers
        findings = [findings[-1]] + findings[:-1]
    h_hist, h_tech, h_find = _pick(rng, [("CLINICAL HISTORY:", "TECHNIQUE:", "FINDINGS:"), ("Indication:", "Technique:", "Findings:"),
                                         ("HISTORY:", "PROTOCOL:", "FINDINGS:")])
    text = (f"{head}\n\n{h_hist} {history}\n\n{h_tech} {technique}\n\n{h_find}\n" + "\n".join(findings)
            + f"\n\n{heading}\n{numbered}\n")
    return text, mentions


# (pattern, replacement) in order; a report of the internal style is left as it is
EXTERNAL_STYLE: tuple[tuple[str, str], ...] = (
    (r"\A(?:CARDIAC MRI REPORT|CMR WITH AND WITHOUT CONTRAST|MRI HEART FUNCTION AND MORPHOLOGY WITH GADOLINIUM)",
     "Cardiovascular magnetic resonance study"),
    (r"(?m)^(?:CLINICAL HISTORY|Indication|HISTORY):", "Reason for referral:"),
    (r"(?m)^(?:TECHNIQUE|Technique|PROTOCOL):", "Sequences acquired:"),
    (r"(?m)^(?:FINDINGS|Findings):", "Results:"),
    (r"(?m)^(?:IMPRESSION:?|Impression:)$", "Clinical impression:"),
    (r"(?m)^\d{1,2}[.)] ", "- "),
    (r"\b(\d(?:\.\d)?)T CMR\b", r"\1 tesla CMR"),
    (r"\b(\d+) mm\b", lambda m: f"{int(m.group(1)) / 10:.1f} cm"),
    (r"\b(\d+)%", r"\1 %"),
    (r"\b(\d+) ml\b", r"\1 mL"),
    (r"\b[Ll]eft ventricular\b|\b[Ll]eft ventricle\b", "LV"),
    (r"\b[Rr]ight ventricular\b|\b[Rr]ight ventricle\b", "RV"),
    (r"\blate gadolinium enhancement\b|\bLGE\b", "delayed enhancement"),
    (r"\bdilated\b(?! cardiomyopathy)", "enlarged"),
    (r"\bDilated\b(?! cardiomyopathy)", "Enlarged"),
    (r"\bdilation\b", "enlargement"),
    (r"\bconsistent with\b", "in keeping with"),
    (r"\b([Pp])ericardial effusion\b", r"\1ericardial fluid collection"),
    (r"\bejection fraction\b", "EF"),
)
STYLES = {"internal": (), "external": EXTERNAL_STYLE}


def restyle(text: str, style: str = "internal") -> str:
    """`text` in the report style `style` (STYLES); 'internal' returns it unchanged."""
    if style not in STYLES:
        raise ValueError(f"unknown report style {style!r} (known: {', '.join(STYLES)})")
    for pattern, repl in STYLES[style]:
        text = re.sub(pattern, repl, text)
    return text
