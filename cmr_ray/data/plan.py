"""Pass 2 of `prepare`: decide, per study, which series fills which view slot (pure Python).

    plan = plan_studies(index_rows, reports, labels, salt, cfg)
    plan.studies   # [StudyPlan]: keys, split, impression, labels, slot -> series grid
    plan.files     # {relpath: manifest row} for every indexed file
    plan.excluded  # [(study_key, reason)]

`index_rows` are `cmr_ray.data.index` rows ({"path", "header", "error"}); headers are
read with absolute paths, so the grids point at files the decode tasks can open.

Rules (each decision leaves a reason in the manifest):
- a study is the set of files sharing StudyInstanceUID; its key is a salted hash of it,
  the patient key a salted hash of PatientID (StudyInstanceUID when PatientID is empty);
- series are classified by `cmr_ray.dicom.classify`; 'other' series are ignored;
- several series for one (sequence, view): `cmr_ray.dicom.order.choose_series` picks one
  deterministically; the rest are ignored as repeated acquisitions;
- the report is joined by AccessionNumber; no report, two different reports, or no
  impression excludes the study; the impression is scrubbed of the study's PHI values;
- a study with none of the views named in `cfg["data"]["views"]` is excluded;
- split (train/val/test) is a deterministic function of the salted patient key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from cmr_ray.data import keys
from cmr_ray.data.manifest import file_row
from cmr_ray.data.schema import BINARY_LABELS
from cmr_ray.views import combo_slots

PHI_FIELDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
              "StudyDate")


@dataclass
class SlotPlan:
    series_uid: str
    sequence: str
    view: str
    grid: list          # [slices][phases] of (abs path, frame index)
    files: list         # relpaths of the series' files


@dataclass
class StudyPlan:
    study_key: str
    patient_key: str
    split: str
    impression: str
    labels: dict
    slots: dict = field(default_factory=dict)   # slot name -> SlotPlan
    files: list = field(default_factory=list)   # every relpath of the study


@dataclass
class Plan:
    studies: list
    files: dict
    excluded: list


def _s(v) -> str:
    return "" if v is None else str(v).strip()


def phi_values(headers: list[dict]) -> list[str]:
    """The identity values a study's headers carry (for scrubbing the impression)."""
    vals = set()
    for h in headers:
        for k in PHI_FIELDS:
            v = _s(h.get(k))
            if v:
                vals.add(v)
    return sorted(vals)


def _series_paths(series) -> list[str]:
    from cmr_ray.dicom.series import series_paths

    return series_paths(series)


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


def plan_studies(index_rows: list[dict], reports: dict, labels: dict | None, salt: str, cfg: dict,
                 relpath_of=None) -> Plan:
    from cmr_ray.dicom.classify import classify_series
    from cmr_ray.dicom.order import choose_series, order_series
    from cmr_ray.dicom.series import group_series
    from cmr_ray.text.report import extract_impression, scrub

    data = cfg["data"]
    required = set(combo_slots(data["views"]))
    labels = labels or {}
    files: dict[str, dict] = {}
    by_study: dict[str, list] = {}
    rel_of: dict[str, str] = {}
    for r in index_rows:
        h = r["header"]
        if h is None:
            files[r["path"]] = file_row(r["path"], "failed", r["error"] or "unreadable")
            continue
        uid = _s(h.get("StudyInstanceUID"))
        if not uid:
            files[r["path"]] = file_row(r["path"], "failed", "no StudyInstanceUID in the header")
            continue
        rel_of[os.path.abspath(str(h.get("path", r["path"])))] = r["path"]
        by_study.setdefault(uid, []).append(r)

    studies, excluded = [], []
    for uid in sorted(by_study):
        rows = by_study[uid]
        headers = [r["header"] for r in rows]
        skey = keys.study_key(salt, uid)
        pid = next((_s(h.get("PatientID")) for h in headers if _s(h.get("PatientID"))), "")
        pkey = keys.patient_key(salt, pid or f"study:{uid}")
        rels = [r["path"] for r in rows]

        def mark(paths, status, reason, uid_=None, seq=None, view=None):
            for p in paths:
                files[p] = file_row(p, status, reason, skey, uid_, seq, view)

        # series -> classification -> candidates per slot
        candidates: dict[str, list] = {}
        try:
            series_list = group_series(headers)
        except Exception as e:  # the grouping itself refused the study's headers
            mark(rels, "failed", f"series grouping failed: {e}")
            excluded.append((skey, "series grouping failed"))
            continue
        for series in series_list:
            spaths = [rel_of.get(os.path.abspath(p), p) for p in _series_paths(series)]
            c = classify_series(series)
            if c.sequence not in ("cine", "lge") or c.view not in ("sax", "2ch", "3ch", "4ch"):
                mark(spaths, "ignored", f"series classified {c.sequence}/{c.view} ({c.rule})",
                     series.uid, c.sequence, c.view)
                continue
            try:
                grid = order_series(series)
            except Exception as e:
                mark(spaths, "failed", f"series cannot be ordered: {e}", series.uid, c.sequence, c.view)
                continue
            mark(spaths, "used", "", series.uid, c.sequence, c.view)
            candidates.setdefault(f"{c.sequence}_{c.view}", []).append((series, grid, spaths, c))

        slots: dict[str, SlotPlan] = {}
        for slot in sorted(candidates):
            cands = candidates[slot]
            chosen = choose_series([s for s, *_ in cands]) if len(cands) > 1 else cands[0][0]
            for series, grid, spaths, c in cands:
                if series is chosen:
                    slots[slot] = SlotPlan(series.uid, c.sequence, c.view, grid, spaths)
                else:
                    mark(spaths, "ignored", f"repeated acquisition of {slot}; chose series {chosen.uid}",
                         series.uid, c.sequence, c.view)

        accession = next((_s(h.get("AccessionNumber")) for h in headers if _s(h.get("AccessionNumber"))), "")
        text, reason = _report_for(accession, reports)
        impression = None
        if reason is None:
            impression = extract_impression(text)
            if not impression:
                reason = "report has no impression"
        if reason is None and not (required & set(slots)):
            found = ", ".join(sorted(slots)) or "no cine/LGE series"
            reason = f"none of the required views ({', '.join(sorted(required))}; found {found})"
        if reason is not None:
            for p in rels:
                r0 = files.get(p, {})
                if r0.get("status") == "failed":
                    continue  # its own error stays the more specific reason
                mark([p], "ignored", f"study excluded: {reason}", r0.get("series_uid"),
                     r0.get("sequence"), r0.get("view"))
            excluded.append((skey, reason))
            continue

        lab = labels.get(accession) or {}
        study_labels = {f"label_{n}": lab.get(f"label_{n}") for n in BINARY_LABELS}
        study_labels["label_acdc"] = lab.get("label_acdc")
        studies.append(StudyPlan(
            study_key=skey, patient_key=pkey,
            split=keys.assign_split(pkey, data["val_fraction"], data["test_fraction"]),
            impression=scrub(impression, phi_values(headers)),
            labels=study_labels, slots=slots, files=rels,
        ))
        for p in rels:  # files of a kept study that no slot uses
            if files.get(p) is None:
                files[p] = file_row(p, "ignored", "not part of any series", skey)
    return Plan(studies, files, excluded)
