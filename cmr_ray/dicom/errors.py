"""The two errors of the DICOM layer; each carries one line: what is wrong and why.

`DicomReadError(reason, path=None)`: one file cannot be used (read_header, load_grid).
`SeriesError(reason, series_uid=None)`: a series cannot form a [slices][phases] grid
(order_series).  `str(err)` is ``"<path>: <reason>"``; `err.reason` is the bare reason the
manifest stores.
"""
from __future__ import annotations


class DicomReadError(ValueError):
    def __init__(self, reason: str, path=None):
        self.reason = " ".join(str(reason).split())  # always one line
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)


class SeriesError(ValueError):
    def __init__(self, reason: str, series_uid: str | None = None):
        self.reason = " ".join(str(reason).split())
        self.series_uid = series_uid
        super().__init__(f"series {series_uid}: {self.reason}" if series_uid else self.reason)
