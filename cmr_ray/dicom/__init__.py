"""The pure DICOM layer: headers, series, classification, ordering, pixels (pydicom + numpy).

    from cmr_ray.dicom import read_header, group_series, classify_study, order_series, choose_series
    from cmr_ray.dicom import load_grid, to_uint8, DicomReadError, SeriesError

    headers = [read_header(p) for p in paths]            # DicomReadError(reason) per bad file
    for series, c in zip(ss := group_series(headers), classify_study(ss)):
        if c.sequence in ("cine", "lge") and c.view != "none" and not series.problems:
            clip = to_uint8(load_grid(order_series(series)), size=64)

No Ray, torch or MLflow here; see docs/INTERFACES.md ("DICOM and text").
"""
import importlib

# Names are imported on first use (PEP 562): the planning modules (classify, order, series,
# stacks) need only numpy, so `prepare`'s driver plans without importing pydicom.
_WHERE = {
    "Classification": "classify", "classify_description": "classify", "classify_series": "classify",
    "classify_study": "classify", "lge_variant": "classify",
    "DicomReadError": "errors", "SeriesError": "errors",
    "PHI_KEYS": "headers", "read_header": "headers",
    "Grid": "order", "choose_series": "order", "order_series": "order",
    "decode_file": "pixels", "load_grid": "pixels", "resize_keep_aspect": "pixels", "to_uint8": "pixels",
    "Series": "series", "group_series": "series",
    "merge_split_stacks": "stacks", "stack_base": "stacks",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"cmr_ray.dicom.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cmr_ray.dicom' has no attribute {name!r}")


__all__ = ["Classification", "classify_description", "classify_series", "classify_study", "lge_variant",
           "DicomReadError", "SeriesError", "PHI_KEYS", "read_header", "Grid", "choose_series", "order_series",
           "decode_file", "load_grid", "resize_keep_aspect", "to_uint8", "Series", "group_series",
           "merge_split_stacks", "stack_base"]
