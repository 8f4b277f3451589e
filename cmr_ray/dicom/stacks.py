"""Merge a stack written as one series per slice into one series (UK Biobank, some Siemens sites).

    series_list = group_series(headers)
    classes = classify_study(series_list)
    series_list, classes, merges = merge_split_stacks(series_list, classes)
    # merges: [(new_series_uid, [member series uids in slice order]), ...]
    grid = order_series(series_list[k])          # the merged stack orders like any stack

UK Biobank writes the cine SAX stack as `CINE_segmented_SAX_b1` ... `CINE_segmented_SAX_b15`,
one series per slice with every phase; other sites write `sa_cine_slice_3` or write each LGE
SAX slice as its own series under one description.  Left alone, each is one cine/sax series
and `choose_series` would take one slice as the stack.

Series of one study are merged when each member
  - is classified with the same (sequence, view='sax', LGE variant) and has no problems;
  - holds ONE slice position (every frame has an ImagePositionPatient);
  - has the same description once a trailing slice/bundle index is stripped (`stack_base`:
    `_b12`, `_slice_3`, `slice3`, ` 4`, `-s2`, `(7)`; an identical description also counts;
    ProtocolName is used when the description is empty);
  - has the same plane orientation (row and column directions, signed, |cos| > PARALLEL_COS),
    the same number of phases, the same Rows x Columns and PixelSpacing (within 2 %);
  - lies at a position along the normal no other member lies at: of members at one position
    (a repeated slice), `choose_series` keeps one and the others are left alone.
At least two members are needed.  The merged `Series` gets series_uid = lowest member UID +
":merged", description = the stripped base, series_number = the lowest, headers = the union,
file_problems/warnings = the union, stats/grid_shape recomputed; it takes the list position of
its first member and the members leave the list.  Its Classification keeps the members'
sequence/view/variant and says "merged N single-slice series" in its rule.  A group whose
merged grid cannot be formed (order_series raises) is left alone.  Everything else passes
through unchanged, in order.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from cmr_ray.dicom.classify import Classification, classify_series
from cmr_ray.dicom.errors import SeriesError
from cmr_ray.dicom.geometry import PARALLEL_COS, POSITION_TOL_MM, frames_of, series_stats, slice_normal
from cmr_ray.dicom.order import choose_series, order_series
from cmr_ray.dicom.series import Series

MERGED_SUFFIX = ":merged"
SPACING_REL_TOL = 0.02
# a trailing index: keyword (b, bundle, slice, slc, sl, s, #) then digits, or separators then digits
_INDEX = re.compile(r"(?:(?:^|[\s_\-.])(?:b|bundle|slices?|slc|sl|s|#|no\.?)[\s_\-#.]*|[\s_\-.#]+)"
                    r"[(\[]?\s*(\d+)\s*[)\]]?\s*$", re.IGNORECASE)
_BRACKETED = re.compile(r"[\s_\-]*[(\[]\s*(?:slices?|sl|s|b)?[\s_\-]*(\d+)\s*[)\]]\s*$", re.IGNORECASE)


def stack_base(description: str) -> tuple[str, int | None]:
    """(base, index): ('CINE_segmented_SAX', 1) for 'CINE_segmented_SAX_b1'; (desc, None) when none."""
    d = (description or "").strip()
    for rx in (_BRACKETED, _INDEX):
        m = rx.search(d)
        if m and d[:m.start()].strip(" _-.#"):
            return d[:m.start()].rstrip(" _-.#"), int(m.group(1))
    return d, None


@dataclasses.dataclass
class _Member:
    series: Series
    c: Classification
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    position: np.ndarray       # ImagePositionPatient of the slice (mean over frames)
    phases: int
    size: tuple
    spacing: tuple | None


def _member(series: Series, c: Classification) -> _Member | None:
    """The slice facts of a series that may join a split stack, or None when it cannot."""
    if c.view != "sax" or c.sequence not in ("cine", "lge") or series.problems:
        return None
    st = series.stats or {}
    if st.get("n_slices") != 1 or st.get("n_orientations") != 1 or (series.grid_shape or (0,))[0] != 1:
        return None
    usable = series.usable_headers
    frames = [f for h in usable for f in frames_of(h)]
    if not frames or any(f.position is None or f.orientation is None for f in frames):
        return None
    o = np.asarray(frames[0].orientation, float)
    n = slice_normal(frames[0].orientation)
    if n is None:
        return None
    sizes = {(h.get("rows"), h.get("columns")) for h in usable}
    spacings = {tuple(round(float(x), 4) for x in h["pixel_spacing"]) for h in usable if h.get("pixel_spacing")}
    if len(sizes) != 1 or len(spacings) > 1:
        return None
    row, col = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
    return _Member(series, c, row, col, n, np.mean([f.position for f in frames], axis=0),
                   int(st.get("phases", 1)), sizes.pop(), spacings.pop() if spacings else None)


def _compatible(a: _Member, b: _Member) -> bool:
    if float(a.row @ b.row) <= PARALLEL_COS or float(a.col @ b.col) <= PARALLEL_COS:
        return False
    if a.phases != b.phases or a.size != b.size:
        return False
    if a.spacing and b.spacing:
        return all(abs(x - y) <= SPACING_REL_TOL * max(abs(x), abs(y)) for x, y in zip(a.spacing, b.spacing))
    return a.spacing == b.spacing


def _group_key(m: _Member) -> tuple:
    text = m.series.description or m.series.protocol
    return (m.series.study_uid, m.c.sequence, m.c.view, m.c.variant, stack_base(text)[0].lower())


def _clusters(members: list[_Member]) -> list[list[_Member]]:
    """Members split into compatible clusters, one member per slice position (repeats resolved)."""
    clusters: list[list[_Member]] = []
    for m in members:
        home = next((cl for cl in clusters if _compatible(cl[0], m)), None)
        if home is None:
            clusters.append([m])
        else:
            home.append(m)
    out = []
    for cl in clusters:
        n0 = cl[0].normal
        by_pos: list[tuple[float, list[_Member]]] = []
        for m in sorted(cl, key=lambda m: float(m.position @ n0)):
            d = float(m.position @ n0)
            if by_pos and d - by_pos[-1][0] <= POSITION_TOL_MM:
                by_pos[-1][1].append(m)
            else:
                by_pos.append((d, [m]))
        kept = []
        for _, ms in by_pos:
            best = choose_series([m.series for m in ms]) if len(ms) > 1 else ms[0].series
            kept.append(next(m for m in ms if m.series is best))
        if len(kept) >= 2:
            out.append(kept)
    return out


def _merge(members: list[_Member]) -> tuple[Series, Classification] | None:
    ss = [m.series for m in members]
    first = min(ss, key=lambda s: s.series_uid)
    descs = [s.description or s.protocol for s in ss]
    numbers = [s.series_number for s in ss if s.series_number is not None]
    headers = [h for s in ss for h in s.headers]
    merged = Series(first.study_uid, first.series_uid + MERGED_SUFFIX,
                    stack_base(first.description)[0] if first.description else "",
                    stack_base(first.protocol)[0] if first.protocol else "",
                    min(numbers) if numbers else None, headers)
    for s in ss:
        merged.file_problems.update(s.file_problems)
        merged.warnings.extend(w for w in s.warnings if w not in merged.warnings)
    merged.stats = series_stats(merged.usable_headers)
    try:
        grid = order_series(merged)
    except SeriesError:
        return None
    if grid.n_slices != len(members):
        return None
    for path, reason in grid.dropped.items():
        merged.file_problems.setdefault(path, reason)
    merged.grid_shape = grid.shape
    c0 = members[0].c
    what = f"merged {len(ss)} single-slice series ({descs[0]!r} ... {descs[-1]!r}) into one {c0.view.upper()} stack"
    evidence = classify_series(merged).evidence
    return merged, Classification(c0.sequence, c0.view, f"{what}; members: {c0.rule}", evidence, c0.variant)


def merge_split_stacks(series_list: list, classifications: list) -> tuple[list, list, list]:
    """(series_list, classifications, merges) with split SAX stacks merged (rules in the module doc)."""
    if len(series_list) != len(classifications):
        raise ValueError(f"merge_split_stacks: {len(series_list)} series but {len(classifications)} classifications")
    index = {id(s): k for k, s in enumerate(series_list)}
    groups: dict[tuple, list[_Member]] = {}
    for s, c in zip(series_list, classifications):
        m = _member(s, c)
        if m is not None:
            groups.setdefault(_group_key(m), []).append(m)
    replace: dict[int, tuple[Series, Classification]] = {}   # id(first member) -> merged
    gone: set[int] = set()
    merges = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        for cluster in _clusters(groups[key]):
            done = _merge(cluster)
            if done is None:
                continue
            merged, mc = done
            ids = [id(m.series) for m in cluster]
            replace[min(ids, key=index.__getitem__)] = (merged, mc)
            gone.update(ids)
            merges.append((merged.series_uid, [m.series.series_uid for m in cluster]))
    out_s, out_c = [], []
    for s, c in zip(series_list, classifications):
        if id(s) in replace:
            out_s.append(replace[id(s)][0])
            out_c.append(replace[id(s)][1])
        elif id(s) not in gone:
            out_s.append(s)
            out_c.append(c)
    return out_s, out_c, merges
