"""Group header dicts into series and find what is wrong with each, without raising.

    series_list = group_series(headers)      # headers from headers.read_header
    s.study_uid, s.series_uid, s.description, s.protocol, s.series_number, s.n_images
    s.file_problems   {path: reason}  files left out of the series (duplicate SOP instance,
                      Rows x Columns unlike the rest of the series)
    s.problems        [reason]        the series cannot be used as it is (a missing phase,
                      mixed orientations): order_series raises SeriesError with the first
    s.warnings        [note]          worth knowing, not fatal (InstanceNumber missing or
                      duplicated: ordering uses TriggerTime/position first anyway)
    s.stats           geometry.series_stats of the usable files (slices, phases, timing ...)
    s.grid_shape      (slices, phases) when a grid can be formed, else None

Series are returned sorted by (study_uid, series_number, series_uid); headers inside a
series by (instance_number, path).
"""
from __future__ import annotations

import collections
import dataclasses

from cmr_ray.dicom.errors import SeriesError
from cmr_ray.dicom.geometry import series_stats


@dataclasses.dataclass
class Series:
    study_uid: str
    series_uid: str
    description: str
    protocol: str
    series_number: int | None
    headers: list
    file_problems: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    stats: dict = dataclasses.field(default_factory=dict)
    grid_shape: tuple | None = None

    @property
    def usable_headers(self) -> list:
        return [h for h in self.headers if h["path"] not in self.file_problems]

    @property
    def n_images(self) -> int:
        """Image frames in the usable files (a multi-frame file counts each frame)."""
        return sum(int(h.get("number_of_frames") or 1) for h in self.usable_headers)

    @property
    def image_type(self) -> list:
        return self.stats.get("image_type", [])

    @property
    def paths(self) -> list:
        return [h["path"] for h in self.headers]


def _sort_key(h):
    n = h.get("instance_number")
    return (n is None, n if n is not None else 0, h["path"])


def _check(series: Series) -> None:
    from cmr_ray.dicom.order import order_series

    seen_sop: dict = {}
    for h in series.headers:
        sop = h.get("sop_instance_uid")
        if sop in seen_sop:
            series.file_problems[h["path"]] = f"duplicate SOPInstanceUID of {seen_sop[sop]}"
        else:
            seen_sop[sop] = h["path"]
    sizes = collections.Counter((h.get("rows"), h.get("columns")) for h in series.usable_headers)
    if len(sizes) > 1:
        (r, c), _ = max(sizes.items(), key=lambda kv: (kv[1], kv[0][0] or 0, kv[0][1] or 0))
        for h in series.usable_headers:
            if (h.get("rows"), h.get("columns")) != (r, c):
                series.file_problems[h["path"]] = (
                    f"Rows x Columns {h.get('rows')}x{h.get('columns')} differs from the series' {r}x{c}")
    usable = series.usable_headers
    missing = [h for h in usable if h.get("instance_number") is None]
    if missing:
        series.warnings.append(f"InstanceNumber missing in {len(missing)} of {len(usable)} files")
    numbers = collections.Counter(h.get("instance_number") for h in usable if h.get("instance_number") is not None)
    dups = sorted(n for n, k in numbers.items() if k > 1)
    if dups:
        series.warnings.append(f"InstanceNumber duplicated: {', '.join(map(str, dups[:5]))}"
                               + (f" and {len(dups) - 5} more" if len(dups) > 5 else ""))
    series.stats = series_stats(usable) if usable else {}
    if not usable:
        series.problems.append("no usable images")
        return
    try:
        grid = order_series(series)
    except SeriesError as e:
        series.problems.append(e.reason)
        return
    for path, reason in grid.dropped.items():
        series.file_problems.setdefault(path, reason)
    series.grid_shape = grid.shape


def group_series(headers) -> list[Series]:
    """Group header dicts by (StudyInstanceUID, SeriesInstanceUID) and check each series."""
    groups: dict = collections.defaultdict(list)
    for h in headers:
        groups[(h["study_instance_uid"], h["series_instance_uid"])].append(h)
    out = []
    for (study, uid), hs in groups.items():
        hs = sorted(hs, key=_sort_key)
        first = hs[0]
        numbers = [h.get("series_number") for h in hs if h.get("series_number") is not None]
        s = Series(study, uid, first.get("series_description", "") or "", first.get("protocol_name", "") or "",
                   min(numbers) if numbers else None, hs)
        _check(s)
        out.append(s)
    out.sort(key=lambda s: (s.study_uid, s.series_number if s.series_number is not None else -1, s.series_uid))
    return out
