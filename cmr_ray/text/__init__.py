"""Report text, pure Python: impression extraction, de-identification, decoding.

    from cmr_ray.text import decode_report_bytes, extract_impression, normalize_impression, scrub
"""
from cmr_ray.text.report import DecodedText, decode_report_bytes, extract_impression, normalize_impression, scrub

__all__ = ["DecodedText", "decode_report_bytes", "extract_impression", "normalize_impression", "scrub"]
