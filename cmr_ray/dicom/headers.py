"""Read one DICOM file's header (no pixels) into a plain dict, or say why it is unusable.

    from cmr_ray.dicom.headers import read_header, PHI_KEYS
    h = read_header("study/series/1.dcm")          # raises DicomReadError(reason)
    h["series_instance_uid"], h["trigger_time"], h["frame_positions"]

Checks made here (headers only, cheap; one specific reason each, in this order):
  missing file · "empty file (0 bytes)" · "not a DICOM file (...)" (no DICM preamble and
  nothing that parses as a DICOM dataset) · "unreadable DICOM header (...)" ·
  "header incomplete: missing ..." (often a file cut short inside its header) ·
  "modality CT is not MR" (only with require_mr=True, the default) · "no pixel data" ·
  "unknown transfer syntax ..." · "transfer syntax X says compressed but pixel data is not
  encapsulated" (and the reverse) · "truncated: pixel data needs N bytes, file has M" ·
  "truncated: encapsulated pixel data has no end delimiter" · "pixel data is N bytes,
  Rows x Columns x frames x bits needs M".
Checks left to later stages: whether compressed pixels actually decode (pixels.load_grid),
series-level consistency (series.group_series), what a series is (classify).

A file without File Meta Information (no preamble) is read when its dataset parses and has
the identifying UIDs; the dict then says ``file_meta_missing=True``.

``pixel_layout`` lets the decode pass read a plain file's pixels without parsing it again
(`cmr_ray.dicom.pixels.decode_file(path, layout)`): for native little-endian monochrome
pixel data with 8/16/32 bits allocated it holds where the pixel bytes start, their dtype,
the frame count and size, the unused high bits, the per-frame rescale (the same values
`decode_file` would compute from the full dataset) and the file's size and mtime (a file
changed since is read in full again).  Every other file (compressed, big endian, deflated,
colour, no file meta, odd values) gets None and is decoded through pydicom as before.

Keys prefixed ``phi_`` (PHI_KEYS) hold patient identity as strings for the pipeline to hash
or scrub; they must never be written anywhere as they are.
"""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.filereader import read_partial
from pydicom.uid import UID

from cmr_ray.dicom.errors import DicomReadError

PHI_KEYS = ("phi_patient_id", "phi_patient_name", "phi_accession_number", "phi_study_date",
            "phi_birth_date", "phi_institution", "phi_referring_physician")
_PHI_SOURCE = {"phi_patient_id": "PatientID", "phi_patient_name": "PatientName",
               "phi_accession_number": "AccessionNumber", "phi_study_date": "StudyDate",
               "phi_birth_date": "PatientBirthDate", "phi_institution": "InstitutionName",
               "phi_referring_physician": "ReferringPhysicianName"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}
_MR_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",
                   "1.2.840.10008.5.1.4.1.1.4.4"}
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_REQUIRED = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit / explicit VR little endian
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def _num(value, kind=float):
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _nums(value, n=None):
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else value
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out


def _get(ds, keyword, default=None):
    try:
        return _strict(ds, keyword, default)
    except Exception:  # a malformed value must not sink the whole header
        return default


# Fast value access.  pydicom converts a raw element through hooks, validation and value
# classes on first access (most of read_header's time); the plain cases below give the same
# Python values directly from the raw bytes: ASCII strings without an escape character, a
# single binary number (US, UL, FD: several for FD), decimal and integer strings of plain
# digits; an absent element is told without pydicom's keyword machinery.  Anything else
# (another VR than the dictionary's, non-ASCII text, several values where pydicom would make a
# MultiValue, sequences, odd numbers, empty values) goes through pydicom.
# tests/dicom/test_headers_fast.py holds the two routes equal.
_SLOW, _ABSENT = object(), object()
_FAST_VRS = {"UI", "CS", "DA", "LO", "SH", "PN", "IS", "DS", "US", "UL", "FD"}
_BINARY = {"US": (2, "H"), "UL": (4, "L"), "FD": (8, "d")}
_SPEC: dict = {}  # keyword -> (tag, dictionary VR) or None
_INT = re.compile(r"[+-]?[0-9]+")
_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ASCII_TEXT = re.compile(rb"[\x00-\x1a\x1c-\x7f]*")  # ASCII without ESC (no ISO 2022 switch)
FAST_VALUES = True  # tests switch it off to compare with pydicom's own conversion


def _strict(ds, keyword, default=None):
    """Like ds.get(keyword, default), fast where it can be, raising on a malformed value."""
    fast = _fast_value(ds, keyword)
    if fast is _SLOW:
        return ds.get(keyword, default)
    return default if fast is _ABSENT else fast


def _spec(keyword):
    if keyword not in _SPEC:
        tag = tag_for_keyword(keyword)
        _SPEC[keyword] = None if tag is None else (tag, dictionary_VR(tag))
    return _SPEC[keyword]


def _fast_value(ds, keyword):
    spec = (_SPEC[keyword] if keyword in _SPEC else _spec(keyword)) if FAST_VALUES else None
    if spec is None:
        return _SLOW
    tag, vr = spec
    elem = ds._dict.get(tag)  # as ds.get_item(tag): the stored element, raw or converted
    if elem is None:
        return _ABSENT
    if vr not in _FAST_VRS:
        return _SLOW
    if type(elem) is tuple:  # _Scanned: (VR or None, value bytes), little endian
        key = (vr, elem[0], elem[1])
        value = _MEMO.get(key, _MISS)
        if value is _MISS:
            if len(_MEMO) >= _MEMO_SIZE:
                _MEMO.clear()
            value = _MEMO[key] = _convert(vr, elem[0], elem[1], True)
        return list(value) if type(value) is list else value
    if isinstance(elem, RawDataElement):
        return _convert(vr, elem.VR, elem.value, elem.is_little_endian)
    return _SLOW


# The same (VR, bytes) recur in every file of a series (UIDs, descriptions, orientation,
# sizes, rescale): converted once.  Lists come back as copies.  The memo holds header values
# (PHI among them): `forget_values()` empties it when a batch of headers is done.
_MEMO: dict = {}
_MEMO_SIZE = 50_000
_MISS = object()


def forget_values() -> None:
    """Drop the converted values kept for the files read so far (see _MEMO)."""
    _MEMO.clear()


def _convert(vr, elem_vr, raw, little):
    """The Python value of one raw element whose dictionary VR is a fast one, or _SLOW."""
    if elem_vr not in (None, vr) or not raw or not isinstance(raw, bytes):
        return _SLOW
    if vr in _BINARY:
        size, code = _BINARY[vr]
        n, rest = divmod(len(raw), size)
        if rest or (n != 1 and vr != "FD"):
            return _SLOW
        values = struct.unpack(f"{'<' if little else '>'}{n}{code}", raw)
        return values[0] if n == 1 else list(values)
    if not _ASCII_TEXT.fullmatch(raw):
        return _SLOW
    text = raw.decode("ascii")
    if vr in ("LO", "SH", "PN"):  # PN: str(PersonName) of an ASCII name is the name
        return _SLOW if "\\" in text else text.rstrip("\0 ")
    if vr == "DS":
        text = text.strip()
    items = text.rstrip(" \0").split("\\")
    if vr == "DS":
        return _SLOW if not all(_DEC.fullmatch(v) for v in items) else (
            float(items[0]) if len(items) == 1 else [float(v) for v in items])
    if vr == "IS":
        return int(items[0]) if len(items) == 1 and _INT.fullmatch(items[0]) else _SLOW
    if len(items) == 1:
        return items[0]
    return items if vr == "CS" else _SLOW  # multi-valued UIDs, dates: pydicom's MultiValue


def _item(ds, *path):
    """Walk nested sequences, first item of each: _item(frame, 'PlanePositionSequence')."""
    cur = ds
    for kw in path:
        seq = _get(cur, kw)
        if not seq:
            return None
        cur = seq[0]
    return cur


def _frame_value(frame, shared, seq_kw, kw):
    for group in (frame, shared):
        if group is None:
            continue
        item = _item(group, seq_kw)
        if item is not None and kw in item:
            return _get(item, kw)
    return None


def _functional_groups(ds, n_frames: int) -> dict:
    """Per-frame geometry/timing/rescale of an Enhanced MR file, as parallel lists."""
    per = _get(ds, "PerFrameFunctionalGroupsSequence")
    shared_seq = _get(ds, "SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    if not per and shared is None:
        return {}
    frames = list(per) if per else [None] * n_frames
    out = {k: [] for k in ("frame_positions", "frame_orientations", "frame_trigger_times",
                           "frame_slopes", "frame_intercepts", "frame_stack_positions",
                           "frame_temporal_indices", "frame_inversion_times", "frame_b_values")}
    for fr in frames:
        out["frame_positions"].append(_nums(_frame_value(fr, shared, "PlanePositionSequence", "ImagePositionPatient"), 3))
        out["frame_orientations"].append(_nums(_frame_value(fr, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6))
        out["frame_trigger_times"].append(_num(_frame_value(fr, shared, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")))
        out["frame_slopes"].append(_num(_frame_value(fr, shared, "PixelValueTransformationSequence", "RescaleSlope")))
        out["frame_intercepts"].append(_num(_frame_value(fr, shared, "PixelValueTransformationSequence", "RescaleIntercept")))
        out["frame_stack_positions"].append(_num(_frame_value(fr, shared, "FrameContentSequence", "InStackPositionNumber"), int))
        out["frame_temporal_indices"].append(_num(_frame_value(fr, shared, "FrameContentSequence", "TemporalPositionIndex"), int))
        ti = _frame_value(fr, shared, "MRModifierSequence", "InversionTimes")
        out["frame_inversion_times"].append(_nums(ti)[0] if _nums(ti) else None)
        out["frame_b_values"].append(_num(_frame_value(fr, shared, "MRDiffusionSequence", "DiffusionBValue")))
    if shared is not None:
        spacing = _nums(_frame_value(None, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
        thick = _num(_frame_value(None, shared, "PixelMeasuresSequence", "SliceThickness"))
        out["shared_pixel_spacing"], out["shared_slice_thickness"] = spacing, thick
    if per:
        first = per[0]
        out.setdefault("shared_pixel_spacing", None)
        if out["shared_pixel_spacing"] is None:
            out["shared_pixel_spacing"] = _nums(_frame_value(first, None, "PixelMeasuresSequence", "PixelSpacing"), 2)
    return out


def rescale_params(ds, n_frames: int, get=None) -> tuple[list[float], list[float]]:
    """Per-frame (slopes, intercepts): RescaleSlope/Intercept, overridden per frame by the
    Enhanced MR PixelValueTransformationSequence (per-frame group first, then the shared one).
    Raises on a malformed value (the caller decides what that means).  `get(ds, keyword,
    default)` reads a value (default: pydicom's ds.get)."""
    get = get or (lambda d, kw, default=None: d.get(kw, default))
    slope = [float(get(ds, "RescaleSlope", 1.0) or 1.0)] * n_frames
    inter = [float(get(ds, "RescaleIntercept", 0.0) or 0.0)] * n_frames
    shared_seq = get(ds, "SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per = get(ds, "PerFrameFunctionalGroupsSequence")
    for i in range(n_frames):
        for g in (per[i] if per and i < len(per) else None, shared):
            pvt = get(g, "PixelValueTransformationSequence") if g is not None else None
            if pvt:
                slope[i] = float(get(pvt[0], "RescaleSlope", 1.0) or 1.0)
                inter[i] = float(get(pvt[0], "RescaleIntercept", 0.0) or 0.0)
                break
    return slope, inter


def _pixel_layout(ds, seen: dict, ts: str, meta_missing: bool, st: os.stat_result) -> dict | None:
    """Where and how a native little-endian monochrome file keeps its pixels, or None (module doc)."""
    if meta_missing or ts not in _NATIVE_LE or seen.get("tag") != 0x7FE00010:
        return None
    try:
        rows, cols = int(_strict(ds, "Rows")), int(_strict(ds, "Columns"))
        frames = int(_strict(ds, "NumberOfFrames", 1) or 1)
        spp, bits = int(_strict(ds, "SamplesPerPixel")), int(_strict(ds, "BitsAllocated"))
        stored, signed = int(_strict(ds, "BitsStored")), int(_strict(ds, "PixelRepresentation"))
        photometric = str(_strict(ds, "PhotometricInterpretation")).strip()
        if (rows < 1 or cols < 1 or frames < 1 or spp != 1 or bits not in (8, 16, 32)
                or not 1 <= stored <= bits or signed not in (0, 1) or photometric not in _MONOCHROME):
            return None
        slopes, intercepts = rescale_params(ds, frames, _strict)
    except Exception:  # missing or malformed: pydicom's full decode gives the reason
        return None
    need = rows * cols * frames * bits // 8
    if seen["length"] < need:
        return None
    return {"offset": seen["offset"] + _pixel_header_size(ds, seen["vr"], seen.get("ts")), "nbytes": need,
            "dtype": f"<{'ui'[signed]}{bits // 8}", "frames": frames, "rows": rows, "columns": cols,
            "unused_bits": bits - stored, "slopes": slopes, "intercepts": intercepts,
            "file_size": st.st_size, "mtime_ns": st.st_mtime_ns}


# The fast scan.  pydicom's read_partial builds every element through its generator, hooks
# and Dataset machinery (about half of read_header's time).  For the common file it is not
# needed: a DICM preamble, explicit-VR little-endian file meta, a little-endian
# (implicit/explicit VR, compressed included) dataset of defined-length, non-sequence
# elements up to the pixel data.  There `_scan` walks the elements with struct and keeps
# each one's (VR, bytes) in a `_Scanned`; the fast values read those, and a value left to
# pydicom gets, once, a Dataset of the same RawDataElements read_partial would have made.  Anything else (no preamble, big endian, deflate, a sequence, an
# undefined length, an odd VR, a file that ends early, no pixel data) returns None and goes
# through read_partial unchanged, so its values and its errors stay pydicom's.
# tests/dicom/test_headers_fast.py holds the two routes equal.
FAST_SCAN = True
_EXTENDED_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN",
                 b"SV", b"UV"}
_U32 = struct.Struct("<L").unpack_from
_EXPLICIT = struct.Struct("<HH2sH").unpack_from  # group, element, VR, 16-bit length
_IMPLICIT = struct.Struct("<HHL").unpack_from     # group, element, 32-bit length
_VR_NAMES = {bytes((a, b)): chr(a) + chr(b) for a in range(65, 91) for b in range(65, 91)}
_IMPLICIT_SQ: dict = {}  # tag -> dictionary VR is SQ (implicit VR needs the dictionary)
_CHUNK = 16384


def _implicit_is_sq(tag: int) -> bool:
    if tag not in _IMPLICIT_SQ:
        try:
            _IMPLICIT_SQ[tag] = "SQ" in dictionary_VR(tag)
        except KeyError:  # private or unknown: pydicom reads it as raw bytes too
            _IMPLICIT_SQ[tag] = False
    return _IMPLICIT_SQ[tag]


_ENCODINGS: dict = {}  # transfer syntax -> implicit VR (bool), or None where _scan declines


def _scan_encoding(ts):
    if ts not in _ENCODINGS:
        uid = UID(ts or "")
        plain = ts and uid.is_transfer_syntax and not uid.is_deflated and uid.is_little_endian
        _ENCODINGS[ts] = uid.is_implicit_VR if plain else None
    return _ENCODINGS[ts]


def _scan(path):
    """(_Scanned, seen) for a plain file, else None (see above)."""
    with open(path, "rb") as f:
        buf = f.read(_CHUNK)
        if len(buf) < 144 or buf[128:132] != b"DICM":
            return None
        pos, end, ts, meta = 132, len(buf), None, True  # the file meta first: explicit VR
        implicit, elements, sq = False, {}, _IMPLICIT_SQ
        while True:
            if pos + 12 > end:  # the longest element header
                buf += f.read(_CHUNK)
                end = len(buf)
                if pos + 8 > end:
                    return None
            if implicit:
                group, element, length = _IMPLICIT(buf, pos)
                tag, vr, start = group << 16 | element, None, pos + 8
                if tag in _PIXEL_TAGS:
                    break
                if sq[tag] if tag in sq else _implicit_is_sq(tag):
                    return None
            else:
                group, element, code, length = _EXPLICIT(buf, pos)
                if meta and group != 2:  # end of the file meta: the dataset's encoding
                    implicit = _scan_encoding(ts)
                    if implicit is None:
                        return None
                    meta = False
                    if implicit:
                        continue  # read this element's header again, as implicit VR
                tag = group << 16 | element
                if code in _EXTENDED_VRS:
                    if pos + 12 > end:
                        return None
                    length, start = _U32(buf, pos + 8)[0], pos + 12
                else:
                    start = pos + 8
                vr = _VR_NAMES.get(code)
                if vr is None:
                    return None
                if tag in _PIXEL_TAGS and not meta:
                    break
                if vr == "SQ":
                    return None
            if length == 0xFFFFFFFF or group == 0xFFFE:
                return None
            pos = start + length
            if pos > end:
                buf += f.read(max(pos - end, _CHUNK))
                end = len(buf)
                if pos > end:
                    return None
            if meta:
                if tag == 0x00020010:
                    ts = buf[start:pos].decode("ascii", "replace").rstrip("\0 ")
            else:
                elements[tag] = (vr, buf[start:pos], start)
    return _Scanned(elements, implicit), dict(tag=tag, vr=vr, length=length, offset=pos, ts=ts)


class _Scanned:
    """What `_scan` read: ``_dict`` {int tag: (VR or None, value bytes, offset)}, which
    `_fast_value` reads directly.  A value it leaves to pydicom (``get``) builds, once, the
    pydicom Dataset of the same RawDataElements read_partial would have made."""

    __slots__ = ("_dict", "_implicit", "_dataset")

    def __init__(self, elements: dict, implicit: bool):
        self._dict, self._implicit, self._dataset = elements, implicit, None

    def dataset(self) -> Dataset:
        if self._dataset is None:  # plain int keys: lookups by int need no BaseTag.__eq__
            self._dataset = Dataset({tag: RawDataElement(BaseTag(tag), vr, len(value), value, offset,
                                                         self._implicit, True)
                                     for tag, (vr, value, offset) in self._dict.items()})
        return self._dataset

    def get(self, keyword, default=None):
        return self.dataset().get(keyword, default)

    def __contains__(self, keyword) -> bool:
        return keyword in self.dataset()


def _parse(path: Path, force: bool):
    seen: dict = {}

    def stop(tag, vr, length):
        if tag in _PIXEL_TAGS:
            seen["tag"], seen["vr"], seen["length"] = int(tag), vr, length
            return True
        return False

    with open(path, "rb") as f:
        ds = read_partial(f, stop_when=stop, force=force)
        seen["offset"] = f.tell()
    return ds, seen


def _pixel_header_size(ds, vr, ts=None) -> int:
    ts = ts or getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    implicit = ts == "1.2.840.10008.1.2" if ts else bool(getattr(ds, "is_implicit_VR", False))
    if implicit:
        return 8
    return 12 if vr in ("OB", "OW", "OF", "OD", "UN", "SQ", "UT", "OL", "OV", None) else 8


# Diffusion weighting, where each maker keeps it: the standard DiffusionBValue; Siemens'
# private B_value (0019,xx0C under 'SIEMENS MR HEADER') and its SequenceName ('*ep_b1000#1');
# GE's first value of (0043,xx39) under 'GEMS_PARM_01' (b-value, often plus 10^9).
_SIEMENS_B = re.compile(r"ep_b(\d+)")


def _tag_text(ds, tag: int) -> str | None:
    """The value of one element by tag (a private one too) as text, without conversion."""
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    value = elem[1] if type(elem) is tuple else getattr(elem, "value", None)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(map(str, value))
    return None if value is None else str(value).strip("\0 ")


def _private_text(ds, group: int, creator: str, element: int) -> str | None:
    for block in range(0x10, 0x30):  # makers reserve their block low in the group
        name = _tag_text(ds, group << 16 | block)
        if name is None:
            continue
        if name.strip().upper() == creator:
            return _tag_text(ds, group << 16 | block << 8 | element)
    return None


def diffusion_b_value(ds) -> float | None:
    """The file's diffusion b-value (s/mm2) from whichever header holds it, else None."""
    try:
        b = _num(_get(ds, "DiffusionBValue"))
        if b is not None:
            return b
        if not isinstance(getattr(ds, "_dict", None), dict):
            return None
        b = _num((_private_text(ds, 0x0019, "SIEMENS MR HEADER", 0x0C) or "").split("\\")[0])
        if b is not None:
            return b
        m = _SIEMENS_B.search(str(_get(ds, "SequenceName", "") or ""))
        if m:
            return float(m.group(1))
        b = _num((_private_text(ds, 0x0043, "GEMS_PARM_01", 0x39) or "").split("\\")[0])
        if b is not None:
            return b - 1e9 if b >= 1e9 else b
    except Exception:  # a malformed private value says nothing
        return None
    return None


def read_header(path, require_mr: bool = True) -> dict:
    """The header fields the pipeline needs, as plain Python values (see module docstring)."""
    path = Path(path)
    try:
        st = path.stat()
        size = st.st_size
    except FileNotFoundError:
        raise DicomReadError("file not found", path) from None
    except OSError as e:
        raise DicomReadError(f"cannot open file ({e.strerror or e})", path) from None
    if size == 0:
        raise DicomReadError("empty file (0 bytes)", path)
    try:
        scanned = _scan(path) if FAST_SCAN else None
    except Exception:  # whatever the scan trips on, pydicom reads and reports it below
        scanned = None
    has_preamble = scanned is not None
    if scanned is None:
        with open(path, "rb") as f:
            head = f.read(132)
        has_preamble = len(head) == 132 and head[128:132] == b"DICM"
    try:
        ds, seen = scanned or _parse(path, force=not has_preamble)
    except EOFError as e:
        raise DicomReadError(f"truncated header (end of file while reading: {e})", path) from None
    except Exception as e:  # pydicom raises many types on garbage
        if not has_preamble:
            raise DicomReadError("not a DICOM file (no DICM preamble at byte 128 and the bytes do not parse as a DICOM dataset)", path) from None
        raise DicomReadError(f"unreadable DICOM header ({type(e).__name__}: {str(e)[:160]})", path) from None
    present = [kw for kw in _REQUIRED if _get(ds, kw)]
    if not has_preamble and not present and not _get(ds, "SOPClassUID"):
        raise DicomReadError("not a DICOM file (no DICM preamble at byte 128 and no DICOM identifiers such as SOPInstanceUID or SeriesInstanceUID)", path)
    missing = [kw for kw in _REQUIRED if kw not in present]
    if missing:
        hint = "; the file may be truncated" if "tag" not in seen else ""
        raise DicomReadError(f"header incomplete: missing {', '.join(missing)}{hint}", path)

    modality = str(_get(ds, "Modality", "") or "").upper()
    sop_class = str(_get(ds, "SOPClassUID", "") or "")
    if require_mr:
        if modality and modality != "MR":
            raise DicomReadError(f"modality {modality} is not MR", path)
        if not modality and sop_class not in _MR_SOP_CLASSES:
            raise DicomReadError(f"modality missing and SOP class {sop_class or '(none)'} is not an MR image", path)
    if "tag" not in seen:
        raise DicomReadError("no pixel data", path)

    meta = getattr(ds, "file_meta", None)
    ts = seen.get("ts") or (str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else "")
    meta_missing = not has_preamble or not ts
    if not ts:  # pydicom guessed the encoding from the dataset itself
        ts = "1.2.840.10008.1.2" if getattr(ds, "is_implicit_VR", True) else (
            "1.2.840.10008.1.2.1" if getattr(ds, "is_little_endian", True) else "1.2.840.10008.1.2.2")
    uid = UID(ts)
    if not uid.is_transfer_syntax:
        raise DicomReadError(f"unknown transfer syntax {ts}", path)
    undefined = seen["length"] in (0xFFFFFFFF, -1)
    if uid.is_encapsulated and not undefined:
        raise DicomReadError(f"transfer syntax {uid.name} says compressed but pixel data is not encapsulated", path)
    if not uid.is_encapsulated and undefined:
        raise DicomReadError(f"transfer syntax {uid.name} says native but pixel data is encapsulated (compressed)", path)

    rows, cols = _num(_get(ds, "Rows"), int), _num(_get(ds, "Columns"), int)
    n_frames = _num(_get(ds, "NumberOfFrames"), int) or 1
    if not rows or not cols:
        raise DicomReadError(f"no image size (Rows={rows}, Columns={cols})", path)
    if not uid.is_deflated:
        start = seen["offset"] + _pixel_header_size(ds, seen["vr"], seen.get("ts"))
        if not undefined and start + seen["length"] > size:
            raise DicomReadError(f"truncated: pixel data needs {seen['length']} bytes, file has {max(size - start, 0)}", path)
        if undefined:
            with open(path, "rb") as f:
                f.seek(max(size - 4096, 0))
                tail = f.read()
            if _SEQ_DELIMITER not in tail:
                raise DicomReadError("truncated: encapsulated pixel data has no end delimiter", path)
        if not undefined:
            bits = _num(_get(ds, "BitsAllocated"), int) or 16
            spp = _num(_get(ds, "SamplesPerPixel"), int) or 1
            need = rows * cols * n_frames * spp * bits // 8
            if seen["length"] < need:
                raise DicomReadError(f"pixel data is {seen['length']} bytes, Rows x Columns x frames x bits needs {need}", path)

    h = {
        "path": str(path),
        "sop_instance_uid": str(_get(ds, "SOPInstanceUID")),
        "study_instance_uid": str(_get(ds, "StudyInstanceUID")),
        "series_instance_uid": str(_get(ds, "SeriesInstanceUID")),
        "modality": modality,
        "sop_class_uid": sop_class,
        "transfer_syntax": ts,
        "file_meta_missing": meta_missing,
        "manufacturer": str(_get(ds, "Manufacturer", "") or ""),
        "series_description": str(_get(ds, "SeriesDescription", "") or ""),
        "protocol_name": str(_get(ds, "ProtocolName", "") or ""),
        "series_number": _num(_get(ds, "SeriesNumber"), int),
        "instance_number": _num(_get(ds, "InstanceNumber"), int),
        "image_type": [str(v) for v in (_get(ds, "ImageType") or [])],
        "image_orientation": _nums(_get(ds, "ImageOrientationPatient"), 6),
        "image_position": _nums(_get(ds, "ImagePositionPatient"), 3),
        "pixel_spacing": _nums(_get(ds, "PixelSpacing"), 2),
        "slice_thickness": _num(_get(ds, "SliceThickness")),
        "slice_location": _num(_get(ds, "SliceLocation")),
        "trigger_time": _num(_get(ds, "TriggerTime")),
        "cardiac_number_of_images": _num(_get(ds, "CardiacNumberOfImages"), int),
        "inversion_time": _num(_get(ds, "InversionTime")),
        "frame_time": _num(_get(ds, "FrameTime")),
        "nominal_interval": _num(_get(ds, "NominalInterval")),
        "sequence_name": str(_get(ds, "SequenceName", "") or ""),
        "b_value": diffusion_b_value(ds),
        "rows": rows,
        "columns": cols,
        "number_of_frames": n_frames,
        "samples_per_pixel": _num(_get(ds, "SamplesPerPixel"), int) or 1,
        "rescale_slope": _num(_get(ds, "RescaleSlope")),
        "rescale_intercept": _num(_get(ds, "RescaleIntercept")),
        "has_pixel_data": True,
        "enhanced": False,
        "frame_positions": None, "frame_orientations": None, "frame_trigger_times": None,
        "frame_slopes": None, "frame_intercepts": None, "frame_stack_positions": None,
        "frame_temporal_indices": None, "frame_inversion_times": None, "frame_b_values": None,
        "pixel_layout": None if uid.is_deflated else _pixel_layout(ds, seen, ts, meta_missing, st),
    }
    fg = _functional_groups(ds, n_frames)
    if fg:
        h["enhanced"] = True
        for k, v in fg.items():
            if k.startswith("frame_"):
                h[k] = v
        if h["pixel_spacing"] is None:
            h["pixel_spacing"] = fg.get("shared_pixel_spacing")
        if h["slice_thickness"] is None:
            h["slice_thickness"] = fg.get("shared_slice_thickness")
        if h["inversion_time"] is None:
            tis = [t for t in fg["frame_inversion_times"] if t is not None]
            h["inversion_time"] = tis[0] if tis else None
        if h["image_orientation"] is None:
            h["image_orientation"] = next((o for o in fg["frame_orientations"] if o), None)
        if h["image_position"] is None:
            h["image_position"] = next((p for p in fg["frame_positions"] if p), None)
    for key, kw in _PHI_SOURCE.items():
        h[key] = str(_get(ds, kw, "") or "")
    return h
