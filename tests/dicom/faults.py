"""Damaged DICOM files made from real ones, for tests of every layer that reads files.

    from tests.dicom.faults import FAULTS, make_fault, real_file
    path = make_fault("truncated", tmp_path / "bad.dcm")        # from pydicom's MR_small.dcm
    for name, (builder, expected_reason) in FAULTS.items(): ...

Each builder is `builder(dst: Path, src: Path | None = None) -> Path` and writes one file.
`FAULTS[name][1]` is the start of the reason `read_header` (or, for pixel faults,
`decode_file`) gives; `stage` says which one ("header" or "pixels").  Sources are pydicom's
own test files (`pydicom.data.get_testdata_file`, never the plural, which goes online).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file


def real_file(name: str = "MR_small.dcm") -> Path:
    p = get_testdata_file(name)
    if p is None:
        raise FileNotFoundError(f"pydicom test file {name} is not installed")
    return Path(p)


def _swap_uid(src: Path, dst: Path, old: str, new: str) -> Path:
    """Replace the transfer syntax UID in the file meta by one of the same padded length."""
    data = src.read_bytes()
    pad = lambda u: u.encode() + (b"\0" if len(u) % 2 else b"")  # noqa: E731
    assert len(pad(old)) == len(pad(new)), "UIDs must have the same padded length"
    head = data[:400]
    assert pad(old) in head, f"{src.name} does not carry transfer syntax {old}"
    dst.write_bytes(head.replace(pad(old), pad(new), 1) + data[400:])
    return dst


def truncated(dst: Path, src: Path | None = None, keep: float = 0.7) -> Path:
    data = (src or real_file()).read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def truncated_compressed(dst: Path, src: Path | None = None) -> Path:
    return truncated(dst, src or real_file("MR_small_RLE.dcm"), keep=0.8)


def zero_byte(dst: Path, src: Path | None = None) -> Path:
    dst.write_bytes(b"")
    return dst


def not_dicom(dst: Path, src: Path | None = None) -> Path:
    dst.write_text("This is a radiology report saved with a .dcm name by mistake.\n" * 20)
    return dst


def no_file_meta(dst: Path, src: Path | None = None) -> Path:
    """A raw dataset: no 128-byte preamble, no DICM, no group 2 (implicit VR little endian)."""
    ds = pydicom.dcmread(src or real_file())
    del ds.file_meta
    ds.preamble = None
    ds.save_as(dst, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return dst


def no_transfer_syntax(dst: Path, src: Path | None = None) -> Path:
    ds = pydicom.dcmread(src or real_file())
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(dst, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return dst


def wrong_syntax_compressed(dst: Path, src: Path | None = None) -> Path:
    """Native pixels under a file meta that claims RLE."""
    return _swap_uid(src or real_file(), dst, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5")


def wrong_syntax_native(dst: Path, src: Path | None = None) -> Path:
    """RLE pixels under a file meta that claims explicit VR little endian."""
    return _swap_uid(src or real_file("MR_small_RLE.dcm"), dst, "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1")


def unknown_syntax(dst: Path, src: Path | None = None) -> Path:
    return _swap_uid(src or real_file(), dst, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.9")


def undecodable(dst: Path, src: Path | None = None) -> Path:
    """JPEG 2000 file whose codestream is overwritten with junk (lengths intact)."""
    src = src or real_file("MR_small_jp2klossless.dcm")
    data = bytearray(src.read_bytes())
    start = data.find(b"\xff\x4f\xff\x51")  # J2K SOC + SIZ markers
    assert start > 0, "no JPEG 2000 codestream found"
    data[start:start + 64] = bytes(range(64))
    dst.write_bytes(bytes(data))
    return dst


def no_pixel_data(dst: Path, src: Path | None = None) -> Path:
    ds = pydicom.dcmread(src or real_file())
    del ds.PixelData
    ds.save_as(dst)
    return dst


def wrong_size(dst: Path, src: Path | None = None) -> Path:
    """Rows doubled: the native pixel data is too short for the stated image size."""
    ds = pydicom.dcmread(src or real_file())
    ds.Rows = ds.Rows * 2
    ds.save_as(dst)
    return dst


def non_mr(dst: Path, src: Path | None = None) -> Path:
    shutil.copyfile(src or real_file("CT_small.dcm"), dst)
    return dst


FAULTS = {
    "zero_byte": (zero_byte, "empty file (0 bytes)", "header"),
    "not_dicom": (not_dicom, "not a DICOM file", "header"),
    "truncated": (truncated, "truncated: pixel data needs", "header"),
    "truncated_compressed": (truncated_compressed, "truncated: encapsulated pixel data has no end delimiter", "header"),
    "wrong_syntax_compressed": (wrong_syntax_compressed, "transfer syntax RLE Lossless says compressed", "header"),
    "wrong_syntax_native": (wrong_syntax_native, "transfer syntax Explicit VR Little Endian says native", "header"),
    "unknown_syntax": (unknown_syntax, "unknown transfer syntax 1.2.840.10008.1.2.9", "header"),
    "no_pixel_data": (no_pixel_data, "no pixel data", "header"),
    "wrong_size": (wrong_size, "pixel data is 8192 bytes, Rows x Columns x frames x bits needs 16384", "header"),
    "non_mr": (non_mr, "modality CT is not MR", "header"),
    "undecodable": (undecodable, "cannot decode pixel data (JPEG 2000 Image Compression (Lossless Only))", "pixels"),
}


def make_fault(name: str, dst: Path, src: Path | None = None) -> Path:
    return FAULTS[name][0](Path(dst), src)
