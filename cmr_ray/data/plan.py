"""Pass 2 of `prepare`: decide, per study, which series fills which view slot (pure Python).

    plan = plan_studies(index_rows, reports, labels, salt, cfg)
    by_study, failed = group_index(index_rows)       # prepare: the driver groups, and
    plan = plan_group(studies, reports, labels, salt, cfg)   # each write task plans its group
    plan.studies   # [StudyPlan]: keys, split, impression, labels, slot -> series grid
    plan.files     # {relpath: manifest row} for every indexed file
    plan.excluded  # [Excluded(study_key, reason, files, accession_key)]

`index_rows` are `cmr_ray.data.index` rows ({"path", "header", "error"}); headers are
read with absolute paths, so the grids point at files the decode tasks can open.

Rules (each decision leaves a reason in the manifest):
- a study is the set of files sharing StudyInstanceUID; its key is a salted hash of it,
  the patient key a salted hash of PatientID (StudyInstanceUID when PatientID is empty);
- series are classified by `cmr_ray.dicom.classify.classify_study` (unnamed views take
  the study's described planes); 'other' series and view 'none' are ignored; a SAX stack
  written one series per slice is merged (`cmr_ray.dicom.stacks.merge_split_stacks`);
- several series for one (sequence, view): `cmr_ray.dicom.order.choose_series` picks one
  deterministically; the rest are ignored as repeated acquisitions;
- the report is joined by AccessionNumber; no report, two different reports, or no
  impression excludes the study; the impression is scrubbed of the study's PHI values;
- a study with none of the views named in `cfg["data"]["views"]` is excluded;
- split (train/val/test) is a deterministic function of the salted patient key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cmr_ray.data import keys
from cmr_ray.data.manifest import file_row
from cmr_ray.data.schema import BINARY_LABELS, FINDINGS
from cmr_ray.views import combo_slots



@dataclass
class SlotPlan:
    series_uid: str     # raw UID, in memory only (the manifest gets series_key)
    series_key: str
    sequence: str
    view: str
    grid: list          # [slices][phases] of (abs path, frame index)
    files: list         # relpaths of the series' files
    layouts: dict = field(default_factory=dict)  # abs path -> header["pixel_layout"] (or None)


@dataclass
class StudyPlan:
    study_key: str
    patient_key: str
    split: str
    impression: str
    labels: dict
    slots: dict = field(default_factory=dict)   # slot name -> SlotPlan
    files: list = field(default_factory=list)   # every relpath of the study
    accession_key: str = ""                     # salted; lets a re-run see a changed report


@dataclass
class Excluded:
    study_key: str
    reason: str
    files: list
    accession_key: str = ""


@dataclass
class Plan:
    studies: list
    files: dict
    excluded: list
    phi_paths: list = field(default_factory=list)  # relpaths naming a PHI value of their study


def _s(v) -> str:
    return "" if v is None else str(v).strip()


def phi_values(headers: list[dict]) -> dict[str, str]:
    """The identity values a study's headers carry (every `phi_*` key that
    `cmr_ray.dicom.headers.read_header` fills), keyed by kind for `scrub`; a second distinct
    value of the same key gets a suffixed key ('phi_patient_name#2')."""
    out: dict[str, str] = {}
    for k in sorted(k for k in set().union(*headers) if k.startswith("phi_")):
        seen = []
        for h in headers:
            v = _s(h.get(k))
            if v and v not in seen:
                seen.append(v)
        for i, v in enumerate(seen):
            out[k if i == 0 else f"{k}#{i + 1}"] = v
    return out


# Names after a title ('discussed with Dr. Pemberton'): the referring physician is not among
# the header values read_header gives today, so scrub() cannot know the name.  Belongs in
# cmr_ray.text.scrub (and ReferringPhysicianName in read_header's phi_* keys); kept here until
# it moves there, because a leaked name is worse than a rule at the wrong depth.
_TITLED_NAME = re.compile(r"(?<![\w])((?:Dr|Drs|Doctor|Prof|Professor|Mr|Mrs|Ms|Miss)\.?\s+)"
                          r"[A-Z][A-Za-z'\-]+(?:[ \t]+[A-Z][a-z'\-]+\b(?![.:]?\s*$))?")


def scrub_titled_names(text: str) -> str:
    return _TITLED_NAME.sub(lambda m: m.group(1) + "[NAME]", text)


def _report_for(accession: str, reports: dict) -> tuple[str | None, str | None]:
    """(text, None) or (None, exclusion reason)."""
    if not accession:
        return None, "no AccessionNumber in the headers, cannot join a report"
    texts = reports.get(accession, [])
    if not texts:
        return None, "no report"
    if len(set(t.strip() for t in texts)) > 1:
        return None, f"{len(texts)} different reports for one accession number"
    return texts[0], None


def group_index(index_rows: list[dict]) -> tuple[dict[str, list], dict[str, dict]]:
    """({StudyInstanceUID: index rows}, {relpath: manifest row} of files that belong to no
    study: unreadable, or no StudyInstanceUID)."""
    files: dict[str, dict] = {}
    by_study: dict[str, list] = {}
    for r in index_rows:
        h = r["header"]
        if h is None:
            files[r["path"]] = file_row(r["path"], "failed", r["error"] or "unreadable")
            continue
        uid = _s(h.get("study_instance_uid"))
        if not uid:
            files[r["path"]] = file_row(r["path"], "failed", "no StudyInstanceUID in the header")
            continue
        by_study.setdefault(uid, []).append(r)
    return by_study, files


def study_accession(rows: list[dict]) -> str:
    """The AccessionNumber a study's report is joined on (its first non-empty one)."""
    return next((_s(r["header"].get("phi_accession_number")) for r in rows
                 if _s(r["header"].get("phi_accession_number"))), "")


def phi_paths_of(by_study: dict[str, list]) -> dict[str, dict[str, tuple[str, str]]]:
    """{StudyInstanceUID: {relpath: (what it names, the path masked)}} for the studies with a
    path naming a PHI value of their own study (`phi_in_paths`)."""
    out = {}
    for uid in sorted(by_study):
        hits = phi_in_paths([r["path"] for r in by_study[uid]], [r["header"] for r in by_study[uid]])
        if hits:
            out[uid] = hits
    return out


def plan_group(studies, reports: dict, labels: dict | None, salt: str, cfg: dict) -> Plan:
    """Plan the given studies, [(StudyInstanceUID, index rows)], each on its own (`prepare`
    runs this inside its write tasks, one group of studies per task, after its driver has
    checked the paths with `phi_paths_of`; so `phi_paths` is left empty here)."""
    files: dict[str, dict] = {}
    planned, excluded = [], []
    for uid, rows in sorted(studies, key=lambda item: item[0]):
        rel_of = {os.path.abspath(str(r["header"].get("path", r["path"]))): r["path"] for r in rows}
        out = _plan_study(uid, rows, reports, labels or {}, salt, cfg, files,
                          lambda p: rel_of.get(os.path.abspath(p), p))
        (planned if isinstance(out, StudyPlan) else excluded).append(out)
    return Plan(planned, files, excluded)


def plan_studies(index_rows: list[dict], reports: dict, labels: dict | None, salt: str,
                 cfg: dict) -> Plan:
    by_study, failed = group_index(index_rows)
    plan = plan_group(list(by_study.items()), reports, labels, salt, cfg)
    plan.files.update(failed)
    plan.phi_paths = [p for hits in phi_paths_of(by_study).values() for p in hits]
    return plan


_PHI_KIND = {"phi_patient_id": "patient ID", "phi_patient_name": "patient name",
             "phi_accession_number": "accession number", "phi_study_date": "study date",
             "phi_birth_date": "birth date", "phi_institution": "institution",
             "phi_referring_physician": "referring physician"}
# A file or folder named by a DICOM UID (digits and dots, e.g. a Siemens SOPInstanceUID
# '1.3.12.2.1107.5.2.43.66112.2016101409263663466202201.dcm'): UIDs often embed the
# acquisition date and time, which is no PHI match of the path; such names are not searched.
_UID_NAME = re.compile(r"\d+(?:\.\d+){3,}(?:\.(?:dcm|dicom|ima|img))?", re.I)


def _phi_patterns(headers: list[dict]) -> list[tuple[re.Pattern, str]]:
    """(pattern, kind) for each identity value of a study: a value is matched as whole path
    tokens (its alphanumeric runs, in order, not inside a longer run); a name also by its parts
    of 4+ characters ('Doe^Jane' -> 'doe_jane', 'jane'); values shorter than 4 characters are not searched."""
    pats, seen = [], set()
    for k, v in phi_values(headers).items():
        kind = _PHI_KIND.get(k.split("#")[0], k.split("#")[0].removeprefix("phi_").replace("_", " "))
        runs = [t for t in re.split(r"[^a-z0-9]+", v.lower()) if t]
        groups = [runs] if len("".join(runs)) >= 4 else []  # the whole value first
        if "name" in k:
            groups += [[t] for t in runs if len(t) >= 4]
        for g in groups:
            if tuple(g) in seen:
                continue
            seen.add(tuple(g))
            body = r"[^a-z0-9]+".join(map(re.escape, g))
            pats.append((re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])", re.I), kind))
    return pats


def phi_in_paths(relpaths: list[str], headers: list[dict]) -> dict[str, tuple[str, str]]:
    """{relpath: (what it names, e.g. 'patient name', the path with those tokens masked)} for
    the paths that name one of their study's identity values as whole tokens (case-
    insensitive; UID-named parts not searched, see _UID_NAME)."""
    pats = _phi_patterns(headers)
    out = {}
    for p in relpaths:
        kinds, parts = [], p.split("/")
        for i, part in enumerate(parts):
            if _UID_NAME.fullmatch(part):
                continue
            for rx, kind in pats:
                if rx.search(part):
                    part = rx.sub(f"[{kind}]", part)
                    if kind not in kinds:
                        kinds.append(kind)
            parts[i] = part
        if kinds:
            out[p] = (", ".join(kinds), "/".join(parts))
    return out


def paths_with_phi(relpaths: list[str], headers: list[dict]) -> list[str]:
    """The relative paths among `relpaths` that name a PHI value of their study (`phi_in_paths`)."""
    hits = phi_in_paths(relpaths, headers)
    return [p for p in relpaths if p in hits]


def _series_candidates(series_list, classes, rel, mark, salt) -> dict[str, list]:
    """Mark every series' files; return {slot: [(series, grid, used relpaths, classification)]}."""
    from cmr_ray.dicom.order import order_series

    candidates: dict[str, list] = {}
    for series, c in zip(series_list, classes):
        rkey = keys.series_key(salt, series.series_uid)
        spaths = [rel(h["path"]) for h in series.headers]
        own = {rel(p): why for p, why in (getattr(series, "file_problems", None) or {}).items()}

        def mark_series(status, reason):
            """Every file of the series; one left out of it for its own problem (a duplicate,
            another Rows x Columns) keeps that problem as its reason, the series' after it."""
            for p in spaths:
                if p in own:
                    st = "ignored" if own[p].startswith("duplicate") or status == "ignored" else "failed"
                    mark([p], st, f"{own[p]}; and its series: {reason}", rkey, c.sequence, c.view)
                else:
                    mark([p], status, reason, rkey, c.sequence, c.view)

        if c.sequence not in ("cine", "lge") or c.view not in ("sax", "2ch", "3ch", "4ch"):
            mark_series("ignored", f"series classified {c.sequence}/{c.view} ({c.rule})")
            continue
        try:
            grid = order_series(series)
        except Exception as e:
            mark_series("failed", f"series unusable: {getattr(e, 'reason', e)}")
            continue
        in_grid = {rel(p) for p in grid.paths}
        warned = "; ".join(getattr(series, "warnings", None) or [])  # used, but say what was odd
        mark([p for p in spaths if p in in_grid], "used", warned, rkey, c.sequence, c.view)
        leftovers = {rel(p): why for p, why in (getattr(series, "file_problems", None) or {}).items()}
        leftovers.update({rel(q): why for q, why in grid.dropped.items()})
        for p in spaths:
            if p not in in_grid:  # a duplicate is ignored (its twin is used); else failed
                why = leftovers.get(p, "not placed in the series grid")
                status = "failed" if p in leftovers and not why.startswith("duplicate") else "ignored"
                mark([p], status, why, rkey, c.sequence, c.view)
        candidates.setdefault(f"{c.sequence}_{c.view}", []).append((series, grid, sorted(in_grid), c))
    return candidates


def _plan_study(uid, rows, reports, labels, salt, cfg, files, rel):
    """One study -> StudyPlan or Excluded; its files' manifest rows go into `files`."""
    from cmr_ray.dicom.classify import classify_study
    from cmr_ray.dicom.order import choose_series
    from cmr_ray.dicom.series import group_series
    from cmr_ray.dicom.stacks import merge_split_stacks
    from cmr_ray.text.report import extract_impression, scrub

    data = cfg["data"]
    headers = [r["header"] for r in rows]
    rels = [r["path"] for r in rows]
    skey = keys.study_key(salt, uid)
    pid = next((_s(h.get("phi_patient_id")) for h in headers if _s(h.get("phi_patient_id"))), "")
    pkey = keys.patient_key(salt, pid or f"study:{uid}")
    accession = study_accession(rows)
    akey = keys.accession_key(salt, accession) if accession else ""

    def mark(paths, status, reason, rkey=None, seq=None, view=None):
        for p in paths:
            files[p] = file_row(p, status, reason, skey, rkey, seq, view)

    series_list = group_series(headers)  # never raises: problems are on each Series
    series_list, classes, _ = merge_split_stacks(series_list, classify_study(series_list))
    candidates = _series_candidates(series_list, classes, rel, mark, salt)
    slots: dict[str, SlotPlan] = {}
    for slot in sorted(candidates):
        cands = candidates[slot]
        chosen = choose_series([s for s, *_ in cands]) if len(cands) > 1 else cands[0][0]
        for series, grid, spaths, c in cands:
            rkey = keys.series_key(salt, series.series_uid)
            if series is chosen:
                in_grid = set(grid.paths)
                layouts = {h["path"]: h.get("pixel_layout") for h in series.headers if h["path"] in in_grid}
                slots[slot] = SlotPlan(series.series_uid, rkey, c.sequence, c.view, grid, spaths, layouts)
            else:
                mark(spaths, "ignored", f"repeated acquisition of {slot}; chose series "
                     f"{keys.series_key(salt, chosen.series_uid)}", rkey, c.sequence, c.view)

    text, reason = _report_for(accession, reports)
    impression = None
    if reason is None:
        impression = extract_impression(text)
        if not impression:
            reason = "report has no impression"
    required = set(combo_slots(data["views"]))
    if reason is None and not (required & set(slots)):
        found = ", ".join(sorted(slots)) or "no cine/LGE series"
        reason = f"none of the required views ({', '.join(sorted(required))}; found {found})"
    if reason is not None:
        for p in rels:
            r0 = files.get(p, {})
            if r0.get("status") in ("failed", "ignored"):
                continue  # its own reason (an error, 'classified other') is more specific
            mark([p], "ignored", f"study excluded: {reason}", r0.get("series_key"), r0.get("sequence"), r0.get("view"))
        return Excluded(skey, reason, rels, akey)

    lab = labels.get(accession) or {}
    study_labels = {f"label_{n}": lab.get(f"label_{n}") for n in BINARY_LABELS}
    study_labels["label_acdc"] = lab.get("label_acdc")
    study_labels.update({f"label_{n}": lab[f"label_{n}"] for n in FINDINGS if f"label_{n}" in lab})  # absent: null in the store
    for p in rels:  # files of a kept study that no series holds
        if files.get(p) is None:
            files[p] = file_row(p, "ignored", "not part of any series", skey)
    return StudyPlan(
        study_key=skey, patient_key=pkey,
        split=keys.assign_split(pkey, data["val_fraction"], data["test_fraction"]),
        impression=scrub_titled_names(scrub(impression, phi_values(headers))),
        labels=study_labels, slots=slots, files=rels, accession_key=akey,
    )
