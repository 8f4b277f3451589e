"""Report text: find the impression, de-identify it, decode odd bytes.  Pure Python.

    text = decode_report_bytes(raw)       # str subclass; text.encoding says which codec won
    imp = extract_impression(text)        # str, or None when the report has no impression
    key = normalize_impression(imp)       # for "identical impression" detection
    safe = scrub(imp, {"phi_patient_name": "DOE^JOHN", "phi_study_date": "20210314", ...})

extract_impression: the section after an IMPRESSION heading ("IMPRESSION:", "Impression:",
"IMPRESSIONS", "Final impression -", "I M P R E S S I O N", a heading on its own line or
followed by text on the same line, markdown ** or # decorations), up to the next heading
(RECOMMENDATION(S), FINDINGS, ELECTRONICALLY SIGNED, SIGNED BY, DICTATED, ADDENDUM,
TECHNIQUE, HISTORY, COMPARISON, INDICATION, any ALL-CAPS heading of 5+ letters ending in
':'), or the end.  Only IMPRESSION headings count: a report with only "CONCLUSION" has no
impression (the pipeline excludes it with that reason).  Numbered items keep their numbers,
one per line; whitespace is tidied.

scrub replaces, case-insensitively: each part of the patient's name ("DOE^JOHN^Q" -> DOE,
JOHN; parts of one letter are left) with [NAME]; the given dates in common spellings
(20210314, 2021-03-14, 03/14/2021, 3/14/21, 14.03.2021, March 14, 2021, 14 Mar 2021 ...)
and any other date-looking text with [DATE]; the given IDs (also without leading zeros),
runs of 6+ digits and labelled numbers (MRN 1234567, Acc# A12345) with [ID]; other given
values (institution) as whole phrases with [REDACTED].  Dict keys decide the kind when they
contain 'name', 'date'/'birth', 'id'/'accession'/'mrn'; otherwise the value's shape does.
"""
from __future__ import annotations

import datetime as _dt
import re

_HEAD = r"(?:final\s+|clinical\s+|overall\s+)?(?:impressions?|i\s+m\s+p\s+r\s+e\s+s\s+s\s+i\s+o\s+n)"
_IMPRESSION = re.compile(
    rf"^[ \t>*#_\-]*{_HEAD}[ \t*_]*(?:[:\-\u2013\u2014.][ \t*_]*|[ \t]*$|(?=[ \t]+\d+[.)]))",
    re.IGNORECASE | re.MULTILINE)
_STOP = re.compile(
    r"^[ \t>*#_\-]*(?:(?:recommendations?|findings|technique|history|comparison|indications?|addendum|"
    r"procedure|clinical\s+history|sequences?|reading\s+physician|attending|reported\s+by)[ \t*_]*(?::|-|$)"
    r"|electronically\s+signed|signed\s+by|dictated\s+by|transcribed\s+by|attestation|"
    r"end\s+of\s+(?:report|impression)|i\s+have\s+personally\s+reviewed)",
    re.IGNORECASE | re.MULTILINE)
_UPPER_HEADING = re.compile(r"^[ \t]*[A-Z][A-Z /&()-]{4,40}[ \t]*:", re.MULTILINE)  # case-sensitive


def extract_impression(text) -> str | None:
    if not text or not isinstance(text, str):
        return None
    m = _IMPRESSION.search(text)
    if not m:
        return None
    rest = text[m.end():]
    ends = [rx.search(rest) for rx in (_STOP, _UPPER_HEADING)]
    end = min([e.start() for e in ends if e] + [len(rest)])
    lines = [" ".join(ln.replace("*", " ").split()) for ln in rest[:end].splitlines()]
    body = "\n".join(ln for ln in lines if ln)
    # a numbered list written on one line: "1. Foo. 2. Bar." -> one item per line
    body = re.sub(r"(?<=[.;])\s+(?=\d{1,2}[.)]\s)", "\n", body).strip()
    return body or None


_LIST_NUMBER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s+")
_PUNCT = re.compile(r"[^\w\s%./-]|(?<!\d)\.|\.(?!\d)")  # keeps % / - and decimal points (3.5)


def normalize_impression(text) -> str:
    """Lower case; list numbers ("1." / "2)" starting a line) and punctuation dropped, except
    % / - and decimal points; whitespace collapsed.  The one normalisation of the project:
    `cmr_ray.model.ids.impression_id` hashes it (identical impressions are not each other's
    negatives in the loss) and duplicate detection compares it."""
    if not text:
        return ""
    t = _LIST_NUMBER.sub(" ", str(text).lower())
    return " ".join(_PUNCT.sub(" ", t).split())


class DecodedText(str):
    """A str that remembers the codec it was decoded with (`.encoding`)."""

    encoding: str = "utf-8"


def decode_report_bytes(data: bytes) -> DecodedText:
    """Decode report bytes: BOMs, then UTF-8, then cp1252, then latin-1 (never fails)."""
    if isinstance(data, str):
        out = DecodedText(data)
        out.encoding = "str"
        return out
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                out = DecodedText(data.decode(codec))
                out.encoding = codec
                return out
            except UnicodeDecodeError:
                break
    for codec in ("utf-8", "cp1252", "latin-1"):
        try:
            out = DecodedText(data.decode(codec))
        except UnicodeDecodeError:
            continue
        out.encoding = codec
        return out
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


# ----------------------------------------------------------------- de-identification
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]
_MON = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_GENERIC_DATES = [
    re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"),
    re.compile(r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"),
    re.compile(rf"\b{_MON}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b", re.IGNORECASE),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON},?\s+\d{{2,4}}\b", re.IGNORECASE),
    re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"),
]
_LABELLED_ID = re.compile(r"\b(MRN|MR\s*#|medical\s+record(?:\s+number)?|acc(?:ession)?(?:\s*(?:no|number))?|"
                          r"patient\s+id|pid|id)\b\s*(?:#|no\.?|number)?\s*[:#]?\s*([A-Z]*\d[\w-]*)", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"\b\d{6,}\b")


def _date_spellings(value: str) -> list[str]:
    digits = re.sub(r"\D", "", value)
    try:
        d = _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except (ValueError, IndexError):
        return [value]
    y, m, dd = d.year, d.month, d.day
    mon = _MONTHS[m - 1]
    out = {f"{y}{m:02d}{dd:02d}", f"{y}-{m:02d}-{dd:02d}", f"{y}/{m:02d}/{dd:02d}", f"{y}.{m:02d}.{dd:02d}"}
    for mm in (f"{m:02d}", str(m)):
        for ds in (f"{dd:02d}", str(dd)):
            for yy in (str(y), f"{y % 100:02d}"):
                for sep in "/-.":
                    out |= {f"{mm}{sep}{ds}{sep}{yy}", f"{ds}{sep}{mm}{sep}{yy}"}
    for name in (mon, mon[:3], mon[:3] + "."):
        out |= {f"{name} {dd}, {y}", f"{name} {dd} {y}", f"{dd} {name} {y}", f"{dd} {name}, {y}",
                f"{name} {dd:02d}, {y}"}
    return sorted(out, key=len, reverse=True)


def _kind(key: str, value: str) -> str:
    k = key.lower()
    if "name" in k and "institution" not in k:
        return "name"
    if "date" in k or "birth" in k:
        return "date"
    if any(w in k for w in ("id", "accession", "mrn", "number")):
        return "id"
    if "institution" in k:
        return "phrase"
    if re.fullmatch(r"(?:19|20)\d{2}-?\d{2}-?\d{2}", value):
        return "date"
    if "^" in value:
        return "name"
    if re.search(r"\d", value):
        return "id"
    return "phrase"


def _values(phi) -> list[tuple[str, str]]:
    if phi is None:
        return []
    items = phi.items() if isinstance(phi, dict) else (("", v) for v in phi)
    out = []
    for key, value in items:
        vals = value if isinstance(value, (list, tuple, set)) else [value]
        for v in vals:
            if v is None:
                continue
            v = str(v).strip()
            if v:
                out.append((str(key), v))
    return out


def _may_contain(text: str, literal: str) -> bool:
    """False only when `literal` (spaces matching any whitespace, any case) cannot occur in
    `text`: each of its words must be a substring of the case-folded text.  Folding is wider
    than re.IGNORECASE (plus dotless i), so a True may still find nothing; a False never misses."""
    folded = text.casefold().replace("\u0131", "i")
    return all(w.casefold() in folded for w in literal.split())


def _sub_literal(text: str, literal: str, repl: str) -> str:
    if not _may_contain(text, literal):  # most scrub values are absent: skip compiling a regex
        return text
    pat = re.escape(literal).replace(r"\ ", r"\s+")
    lead = r"(?<![\w])" if literal[:1].isalnum() else ""
    tail = r"(?![\w])" if literal[-1:].isalnum() else ""
    return re.sub(lead + pat + tail, repl, text, flags=re.IGNORECASE)


def scrub(text, phi=None) -> str:
    """De-identify free text: the given PHI values, then generic dates and ID numbers."""
    if not text:
        return text or ""
    out = str(text)
    for key, value in _values(phi):
        kind = _kind(key, value)
        if kind == "name":
            parts = [p for p in re.split(r"[\^,\s]+", value) if len(p.strip(".")) > 1]
            for p in sorted(set(parts), key=len, reverse=True):
                out = _sub_literal(out, p.strip("."), "[NAME]")
        elif kind == "date":
            for spelling in _date_spellings(value):
                out = _sub_literal(out, spelling, "[DATE]")
        elif kind == "id":
            for v in {value, value.lstrip("0") or value}:
                out = _sub_literal(out, v, "[ID]")
        else:
            out = _sub_literal(out, value, "[REDACTED]")
    for rx in _GENERIC_DATES:
        out = rx.sub("[DATE]", out)
    out = _LABELLED_ID.sub(lambda m: f"{m.group(1)} [ID]", out)
    out = _DIGIT_RUN.sub("[ID]", out)
    return out
