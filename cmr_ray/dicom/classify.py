"""What a series is: sequence (cine, lge, other) and view (sax, 2ch, 3ch, 4ch, none).

    seq, view, rule = classify_description("4CH_FIESTA_BH")      # ('cine', '4ch', "...")
    c = classify_series(series)             # Classification(sequence, view, rule, evidence)
    cs = classify_study(series_list)        # same, using the study's SAX plane for views

Description rules (SeriesDescription, then ProtocolName where the description says nothing),
in this order; matching is on lower-cased words (camelCase and punctuation split):
 1. exclusions -> other: localizers/scouts/surveys/plan scans, TI scouts and Look-Locker
    (incl. GE "CINE IR"), T1/T2/T2* maps (MOLLI, ShMOLLI, multi-echo), perfusion, flow
    (PC, VENC, qflow, 4D flow, V=250), tagging, black-blood and weighted spin-echo
    (TSE/FSE/HASTE/T1w/T2w/STIR), angiography and 3D, derived results, timing/bolus scans.
 2. LGE words: LGE, DE, DHE, MDE, DME, PSIR, viability, delayed/late enhancement, IR-FGRE,
    TI=<ms>.  Magnitude and phase-sensitive (PSIR) images are both LGE; `lge_variant`
    tells them apart and `order.choose_series` prefers PSIR when a study has both.
 3. cine words: cine, FIESTA, SSFP, bFFE/bTFE, TrueFISP/trufi/tfisp, segmented, retro.
 4. a view named and no sequence word -> cine (e.g. '4_Chamber', 'SHORT_AXIS').
 5. otherwise other.
Views: numbered chambers win (2CH, LV3CH, '4 chambers', 'two chamber'), then names: SA/SAX/
SHAX/short axis -> sax, VLA -> 2ch, VLAX -> 3ch (the labelled archive's only VLAX rows are
3-chamber), LVOT -> 3ch, HLA -> 4ch.  Several views named, a bare 'LAX', or any other
structure (aortic valve, RVOT, RV2CH/RV3CH, axial/sagittal/coronal, PA ...) -> none.
`other` always has view none.

Header evidence (classify_series) checks the description: cine needs more than one phase per
slice and cardiac timing (`cardiac_timing`: TriggerTime spread over the phases,
CardiacNumberOfImages or NominalInterval; never diffusion b-values), so several images at
one position (DWI b-values, copies of one image, an ungated time series) are not cine; a one-phase "cine" with an InversionTime is LGE, without one it is other; "LGE" with
several phases is other; frames in several orientations or ImageType LOCALIZER/MAP are
other.  Where the description is empty or says nothing, the sequence comes from timing
(phases, InversionTime) and the view from geometry (axis-aligned planes -> none; a stack of
>= 5 parallel slices -> sax; a single oblique slice at >= 45 degrees to the study's SAX
normal takes the view of a described long-axis series in the same plane, else none); the
evidence says so.
"""
from __future__ import annotations

import dataclasses
import re

from cmr_ray.dicom.geometry import angle_deg

SEQUENCES = ("cine", "lge", "other")
VIEWS = ("sax", "2ch", "3ch", "4ch", "none")


@dataclasses.dataclass(frozen=True)
class Classification:
    sequence: str
    view: str
    rule: str
    evidence: str
    variant: str | None = None   # for lge: 'psir', 'magnitude' or 'unknown'


def _words(text: str) -> str:
    t = re.sub(r"([a-z])([A-Z])", r"\1 \2", text or "")
    t = re.sub(r"[^a-z0-9]+", " ", t.lower())
    return f" {' '.join(t.split())} "


def _rx(*alts) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b")


EXCLUSIONS = [
    ("localizer", _rx(r"locs?", r"locali[sz]ers?", r"locator", r"scouts?", r"survey", r"surv", r"pilot",
                      r"plan", r"planning", r"define\w*", r"3 ?pl", r"3 ?plane", r"tri ?plane", r"three ?plane")),
    ("TI scout / Look-Locker", _rx(r"look ?locker", r"ll", r"cine ?ir", r"ir ?epi", r"ti ?scout", r"t1 ?scout")),
    ("mapping / multi-echo", _rx(r"t[12] ?maps?", r"t[12]map\w*", r"maps?", r"mapping", r"molli", r"sh ?molli",
                                 r"sasha", r"t2 ?star", r"ecv", r"multi ?echo", r"\d+ ?echo", r"echo", r"me ?gre",
                                 r"me", r"mfgre", r"\d+ ?ec")),
    ("perfusion", _rx(r"perf\w*", r"first ?pass", r"aif")),
    ("flow", _rx(r"\w*flow\w*", r"pc", r"fast ?pc", r"venc", r"phase ?contrast", r"4 ?d ?f\w*", r"vdrq")),
    ("tagging", _rx(r"tag", r"tags", r"tagged", r"tagging", r"spamm", r"grid")),
    ("spin echo / black blood", _rx(r"t[12] ?w", r"t[12] ?weighted", r"tse", r"fse", r"dirfse", r"tirfse",
                                    r"irfse", r"haste", r"ssfse", r"db", r"dir", r"dark ?blood", r"black ?blood",
                                    r"bb", r"stir", r"tirm", r"\w*blade", r"dixon", r"pd", r"in ?phase",
                                    r"out ?phase")),
    ("angiography / 3D", _rx(r"mra", r"angio\w*", r"3 ?d", r"coronar\w*", r"navigator", r"tof")),
    ("derived", _rx(r"results?", r"report", r"avg", r"average", r"mip", r"mpr", r"subtract\w*",
                    r"screen ?save", r"secondary", r"derived")),
    ("timing / bolus", _rx(r"timing", r"bolus", r"idrive", r"fluoro", r"interactive")),
]
_RAW_EXCLUSIONS = [("mapping / multi-echo", re.compile(r"t2\s*\*|r2\s*\*")), ("flow", re.compile(r"\bv\s*=\s*\d"))]
# weak exclusions: bare T1/T2/SE/EPI/FS words exclude only when no LGE word is present
# ('tfl20_t1_psir_segmented_SHORT_AX_PSIR' is LGE, 'SAX_T1_FGRE' is not)
WEAK_EXCLUSIONS = ("weighted imaging", _rx(r"t1", r"t2", r"se", r"epi", r"fs", r"vibe", r"gad"))
LGE_WORDS = _rx(r"lge", r"de", r"dhe", r"mde", r"dme", r"pde", r"psir", r"ps ?ir", r"\w*viab\w*", r"delayed",
                r"late", r"hyper ?enh\w*", r"enhancement", r"irp", r"ir ?p? ?fgre", r"ir ?tfl", r"ir ?gre",
                r"tfl ?ir", r"ir")
_RAW_LGE = re.compile(r"\bti\s*[=_ ]?\s*\d{2,4}(?!\d)")
CINE_WORDS = _rx(r"cine\w*", r"\w*fiesta", r"ssfp", r"b ?ffe", r"b ?tfe", r"trufi\w*", r"true ?fisp",
                 r"t?fisp", r"balanced", r"segmented", r"retro")
NUMBERED = {v: _rx(rf"(?:lv ?)?{n} ?ch(?:amber)?s?", rf"{w} ?ch(?:amber)?s?")
            for v, n, w in (("2ch", "2", "two"), ("3ch", "3", "three"), ("4ch", "4", "four"))}
SAX_WORDS = _rx(r"sax", r"sa", r"shax", r"sh ax", r"short ?ax\w*", r"lv ?sa")
NAMED = {"2ch": _rx(r"vla", r"vert\w* long ?ax\w*"), "3ch": _rx(r"vlax", r"lvot"),
         "4ch": _rx(r"hla", r"hlax", r"horiz\w* long ?ax\w*")}
STRUCTURES = _rx(r"ax", r"axial", r"tra", r"trans\w*", r"sag\w*", r"cor", r"coronal", r"ao", r"aorta", r"aortic",
                 r"av", r"valve", r"mitral", r"mv", r"tricuspid", r"pa", r"mpa", r"lpa", r"rpa", r"pulm\w*",
                 r"rvot", r"rv ?3 ?ch", r"rv2ch", r"rv ?inflow", r"rv ?outflow", r"la", r"ra", r"atri\w*", r"svc",
                 r"ivc", r"thorax", r"chest")
LAX_ONLY = _rx(r"lax", r"long ?ax\w*", r"longaxis")


def _find(rx: re.Pattern, text: str) -> str | None:
    m = rx.search(text)
    return m.group(0).strip() if m else None


def _view_of(text: str) -> tuple[str, str] | None:
    """(view, how) named by the words, or None when the text names no view at all."""
    w = _words(text)
    without_sax = SAX_WORDS.sub(" ", w)
    structure = _find(STRUCTURES, without_sax)
    numbered = {v for v, rx in NUMBERED.items() if rx.search(w)}
    sax = _find(SAX_WORDS, w)
    if structure:
        return "none", f"names {structure!r}, not an LV view"
    views = numbered | ({"sax"} if sax else set())
    if not numbered:
        views |= {v for v, rx in NAMED.items() if rx.search(w)}
    if len(views) == 1:
        v = views.pop()
        return v, f"view {v} named"
    if len(views) > 1:
        return "none", f"names several views ({', '.join(sorted(views))})"
    if LAX_ONLY.search(w):
        return "none", "long axis named, which one not said"
    return None


def _sequence_of(text: str) -> tuple[str, str, bool] | None:
    """(sequence, why, excluded) from words, or None when no sequence word is present."""
    w, raw = _words(text), (text or "").lower()
    for name, rx in _RAW_EXCLUSIONS:
        hit = _find(rx, raw)
        if hit:
            return "other", f"{name} ({hit!r})", True
    for name, rx in EXCLUSIONS:
        hit = _find(rx, w)
        if hit:
            return "other", f"{name} ({hit!r})", True
    hit = _find(LGE_WORDS, w) or _find(_RAW_LGE, raw)
    if hit:
        return "lge", f"LGE word {hit!r}", False
    weak = _find(WEAK_EXCLUSIONS[1], w)
    if weak:
        return "other", f"{WEAK_EXCLUSIONS[0]} ({weak!r})", True
    hit = _find(CINE_WORDS, w)
    if hit:
        return "cine", f"cine word {hit!r}", False
    return None


def classify_description(description: str, protocol: str = "") -> tuple[str, str, str]:
    """(sequence, view, rule) from SeriesDescription, with ProtocolName as the fallback."""
    texts = [("description", description or ""), ("protocol", protocol or "")]
    for src, t in texts:  # an exclusion in either text wins
        s = _sequence_of(t)
        if s and s[2]:
            return "other", "none", f"{src} {t!r}: {s[1]}"
    seq = next(((src, t, s) for src, t in texts if (s := _sequence_of(t))), None)
    view = next(((src, t, v) for src, t in texts if (v := _view_of(t))), None)
    if seq is None and view is None:
        what = "empty" if not (description or protocol) else "no sequence word and no view"
        return "other", "none", f"description {description!r}: {what}"
    if seq is None:
        src, t, (v, how) = view
        if v == "none":
            return "other", "none", f"{src} {t!r}: no sequence word; {how}"
        return "cine", v, f"{src} {t!r}: {how}, no sequence word: cine by default"
    src, t, (sequence, why, _) = seq
    if view is None:
        return sequence, "none", f"{src} {t!r}: {why}; no view named"
    vsrc, vt, (v, how) = view
    where = "" if vsrc == src else f"; {vsrc} {vt!r}"
    return sequence, v, f"{src} {t!r}: {why}; {how}{where}"


def lge_variant(description: str, protocol: str = "", image_type=None) -> str:
    """'psir', 'magnitude' or 'unknown' for an LGE series."""
    raw = f"{description or ''} {protocol or ''}".lower()
    w = _words(raw)
    types = {str(v).upper() for v in (image_type or [])}
    if re.search(r"\bps ?ir\b|\bpsir|phase ?sens|(^|[^a-z])ps:|\bps\b", w + " " + raw) or "PSIR" in types:
        return "psir"
    if re.search(r"\bmag\w*|\bmagn\w*", w) or "MAGNITUDE" in types:
        return "magnitude"
    return "unknown"


_HEADER_OTHER = ("LOCALIZER", "MAP", "T1MAP", "T2MAP", "T1 MAP", "T2 MAP", "PERFUSION", "VELOCITY")


def classify_series(series, context: dict | None = None) -> Classification:
    """Classify one Series (series.group_series) from its description checked against headers.

    `context` (from classify_study) may give 'sax_normal' and 'lax_normals' {view: normal}.
    """
    st = series.stats or {}
    seq, view, rule = classify_description(series.description, series.protocol)
    desc_view_named = _view_of(series.description) is not None or _view_of(series.protocol) is not None
    excluded = seq == "other" and _excluded(series)
    phases, ti, n_slices = st.get("phases", 1), st.get("inversion_time"), st.get("n_slices", 1)
    ev = [f"{st.get('n_frames', 0)} frames", f"{n_slices} slice(s) x {phases} phase(s)"]
    if st.get("cardiac_number_of_images"):
        ev.append(f"CardiacNumberOfImages={st['cardiac_number_of_images']}")
    if st.get("n_trigger_times", 0) > 1:
        ev.append(f"TriggerTime spread {st['trigger_spread_ms']:.0f} ms")
    if st.get("nominal_interval"):
        ev.append(f"NominalInterval={st['nominal_interval']:g}")
    if st.get("b_values"):
        ev.append(f"b-values {'/'.join(f'{b:g}' for b in st['b_values'])}")
    if ti:
        ev.append(f"InversionTime={ti:g}")
    types = [t for t in st.get("image_type", []) if any(k in t for k in _HEADER_OTHER)]
    timed, timing = cardiac_timing(st)

    def done(sequence, v, why):
        v = "none" if sequence == "other" else v
        variant = lge_variant(series.description, series.protocol, st.get("image_type")) if sequence == "lge" else None
        return Classification(sequence, v, f"{rule} -> {why}" if why else rule, "; ".join(ev), variant)

    if st.get("n_orientations", 1) > 1:
        return done("other", "none", f"headers: frames in {st['n_orientations']} orientations (localizer)")
    if types:
        return done("other", "none", f"headers: ImageType {'/'.join(types)}")
    if excluded:
        return done("other", "none", "")
    if seq == "lge" and phases > 1:
        return done("other", "none", f"headers: described as LGE but {phases} phases per slice (TI scout?)")
    if seq == "cine" and phases <= 1:
        if ti:
            seq, why = "lge", f"headers: described as cine but one phase and InversionTime={ti:g}: LGE"
        else:
            return done("other", "none", "headers: described as cine but only one phase")
    elif seq == "cine" and not timed:
        return done("other", "none", f"headers: described as cine but {phases} images per slice with {timing}")
    elif seq == "other":  # description empty or says nothing: decide from timing
        if phases > 1 and not timed:
            return done("other", "none", f"description unhelpful; headers: {phases} images per slice "
                                         f"with {timing}: not cine")
        if phases > 1:
            seq, why = "cine", f"description unhelpful; headers: {phases} phases, {timing}: cine"
        elif ti:
            seq, why = "lge", f"description unhelpful; headers: one phase with InversionTime={ti:g}: LGE"
        else:
            return done("other", "none", "description unhelpful; headers: one phase, no InversionTime")
    else:
        why = f"headers agree ({phases} phase(s){', TI' if ti and seq == 'lge' else ''}"
        why += f", {timing})" if seq == "cine" else ")"
        if seq == "lge" and not ti:
            why = "headers: one phase (no InversionTime recorded)"
    if desc_view_named:
        return done(seq, view, why)
    gview, gwhy = _view_from_geometry(st, context or {})
    return done(seq, gview, f"{why}; {gwhy}")


_DIFFUSION_TYPES = {"DIFFUSION", "ADC", "TRACEW", "EADC", "FA", "DWI"}


def cardiac_timing(st: dict) -> tuple[bool, str]:
    """Whether a series' images per slice are cardiac phases, from geometry.series_stats:
    (True, the timing seen) or (False, what is missing or speaks against it).  Phases need
    cardiac timing: TriggerTime spread over the phases (at least half of them distinct),
    CardiacNumberOfImages > 1 or a NominalInterval (R-R); diffusion (b-values, ImageType
    DIFFUSION/ADC/TRACEW) never is cine, whatever its timing."""
    b = st.get("b_values") or []
    dtypes = sorted(set(st.get("image_type") or []) & _DIFFUSION_TYPES)
    if len(b) > 1 or any(v > 0 for v in b):
        return False, f"diffusion b-values {'/'.join(f'{v:g}' for v in b)}"
    if dtypes:
        return False, f"diffusion ImageType {'/'.join(dtypes)}"
    phases, times = st.get("phases", 1), st.get("n_trigger_times", 0)
    if times >= max(2, phases // 2) and st.get("trigger_spread_ms", 0) > 0:
        return True, f"TriggerTime spread {st['trigger_spread_ms']:.0f} ms"
    if (st.get("cardiac_number_of_images") or 0) > 1:
        return True, f"CardiacNumberOfImages={st['cardiac_number_of_images']}"
    if (st.get("nominal_interval") or 0) > 0:
        return True, f"NominalInterval={st['nominal_interval']:g} ms"
    return False, "no cardiac timing (no TriggerTime spread, CardiacNumberOfImages or NominalInterval)"


def _excluded(series) -> bool:
    for t in (series.description, series.protocol):
        s = _sequence_of(t)
        if s and s[2]:
            return True
    return False


def _view_from_geometry(st: dict, ctx: dict) -> tuple[str, str]:
    n = st.get("normal")
    if n is None:
        return "none", "no view named and no orientation to decide from"
    if st.get("axis_aligned"):
        return "none", f"no view named; plane is {st['axis_aligned']}: not a cardiac view"
    sax = ctx.get("sax_normal")
    if sax is not None:
        a = angle_deg(n, sax)
        if a < 20 and st.get("n_slices", 1) >= 2:
            return "sax", f"no view named; geometry: {st['n_slices']} slices parallel to the study's SAX ({a:.0f} deg)"
        if a >= 45:
            for v, m in sorted((ctx.get("lax_normals") or {}).items()):
                if angle_deg(n, m) < 10:
                    return v, f"no view named; geometry: long axis ({a:.0f} deg to SAX) in the plane of the study's {v}"
            return "none", f"no view named; geometry: long axis ({a:.0f} deg to SAX), which one undecidable"
    if st.get("n_slices", 1) >= 5:
        return "sax", f"no view named; geometry: stack of {st['n_slices']} parallel oblique slices: SAX"
    return "none", "no view named; geometry: oblique plane, view undecidable without the study's SAX"


def classify_study(series_list: list) -> list[Classification]:
    """Classify every series of one study; unnamed views use the study's described planes."""
    first = [classify_series(s) for s in series_list]
    ctx: dict = {"lax_normals": {}}
    for s, c in zip(series_list, first):
        n = (s.stats or {}).get("normal")
        named = _view_of(s.description) is not None or _view_of(s.protocol) is not None
        if n is None or c.sequence == "other" or c.view == "none" or not named:
            continue
        if c.view == "sax" and "sax_normal" not in ctx:
            ctx["sax_normal"] = n
        elif c.view != "sax":
            ctx["lax_normals"].setdefault(c.view, n)
    return [classify_series(s, ctx) if c.sequence != "other" and not (_view_of(s.description) or _view_of(s.protocol))
            else c for s, c in zip(series_list, first)]
