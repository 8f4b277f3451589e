"""The pure DICOM layer: headers, series, classification, ordering, pixels (pydicom + numpy).

    from cmr_ray.dicom import read_header, group_series, classify_study, order_series, choose_series
    from cmr_ray.dicom import load_grid, to_uint8, DicomReadError, SeriesError

    headers = [read_header(p) for p in paths]            # DicomReadError(reason) per bad file
    for series, c in zip(ss := group_series(headers), classify_study(ss)):
        if c.sequence in ("cine", "lge") and c.view != "none" and not series.problems:
            clip = to_uint8(load_grid(order_series(series)), size=64)

No Ray, torch or MLflow here; see docs/INTERFACES.md ("DICOM and text").
"""
from cmr_ray.dicom.classify import Classification, classify_description, classify_series, classify_study, lge_variant
from cmr_ray.dicom.errors import DicomReadError, SeriesError
from cmr_ray.dicom.headers import PHI_KEYS, read_header
from cmr_ray.dicom.order import Grid, choose_series, order_series
from cmr_ray.dicom.pixels import decode_file, load_grid, resize_keep_aspect, to_uint8
from cmr_ray.dicom.series import Series, group_series
from cmr_ray.dicom.stacks import merge_split_stacks, stack_base

__all__ = ["Classification", "classify_description", "classify_series", "classify_study", "lge_variant",
           "DicomReadError", "SeriesError", "PHI_KEYS", "read_header", "Grid", "choose_series", "order_series",
           "decode_file", "load_grid", "resize_keep_aspect", "to_uint8", "Series", "group_series",
           "merge_split_stacks", "stack_base"]
