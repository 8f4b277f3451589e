"""The shortcuts `prepare` takes must not change a value:
- read_header's fast scan (its own element walk instead of pydicom's read_partial) and fast
  value access give the dict, or the error, that pydicom's own parsing and conversion give;
- decode_file(path, pixel_layout) gives the array a full pydicom decode gives, and falls back
  to the full decode for every file it cannot read directly (or that changed since indexing).
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from pydicom.dataelem import DataElement

from cmr_ray.dicom import headers
from cmr_ray.dicom import load_grid, read_header
from cmr_ray.dicom.pixels import decode_file
from tests.dicom.builders import _base, MR, pydicom, write_enhanced, write_mr
from tests.dicom.faults import FAULTS, make_fault, no_file_meta, real_file

NATIVE = ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm", "emri_small.dcm",
          "693_UNCR.dcm", "RG3_UNCR.dcm", "mlut_18.dcm", "vlut_04.dcm", "rtdose.dcm", "CT_small.dcm"]
NOT_DIRECT = ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "image_dfl.dcm",
              "SC_rgb.dcm", "OBXXXX1A.dcm", "liver.dcm", "emri_small_jpeg_ls_lossless.dcm"]


def _same(a, b) -> bool:
    """Equal values of equal types (nan equal to nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _both_routes(path, monkeypatch):
    out = []
    for fast in (True, False):
        monkeypatch.setattr(headers, "FAST_VALUES", fast)
        monkeypatch.setattr(headers, "FAST_SCAN", fast)
        try:
            out.append(read_header(path, require_mr=False))
        except Exception as e:  # the same failure either way
            out.append(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
    return out


@pytest.mark.parametrize("name", NATIVE + NOT_DIRECT + ["emri_small_big_endian.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
                                                         "JPEG2000.dcm"])
def test_fast_values_equal_pydicom_on_real_files(name, monkeypatch):
    fast, slow = _both_routes(real_file(name), monkeypatch)
    assert _same(fast, slow), (fast, slow)


ODD = {  # keyword -> (VR, value as written): each goes its own way through the fast path or pydicom
    "PatientName": ("PN", "Doe^J\u00e4ne^^Dr.=^ "),           # non-ASCII: pydicom
    "ReferringPhysicianName": ("PN", "Smith^John^^^ "),      # plain ASCII name
    "InstitutionName": ("LO", "St. Elsewhere\\Annex "),     # two values: pydicom
    "AccessionNumber": ("SH", "  ACC 1 \x00"),
    "SeriesDescription": ("LO", "\x1b$B cine"),               # ISO 2022 escape: pydicom
    "ImageType": ("CS", "ORIGINAL\\PRIMARY\\M\\ND "),
    "SeriesNumber": ("IS", "+12 "),
    "InstanceNumber": ("IS", " 3.0"),                        # leading space, decimal: pydicom
    "SliceThickness": ("DS", " 8.0E+00 "),
    "SliceLocation": ("DS", "1.5\\2"),                      # two values where one is expected
    "TriggerTime": ("DS", ".5 "),
    "InversionTime": ("DS", "7777"),                         # made malformed below
    "PixelSpacing": ("DS", "1.25\\1.25"),
    "CardiacNumberOfImages": ("IS", "25"),
    "StudyDate": ("DA", "20210314"),
    "FrameTime": ("DS", ""),                                 # empty
}


# The odd values are the point: pydicom warns on each one it reads, and those warnings are expected here.
@pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning")
@pytest.mark.filterwarnings("ignore:Found unknown escape sequence:UserWarning")
@pytest.mark.parametrize("implicit", [False, True])
def test_fast_values_equal_pydicom_on_odd_values(tmp_path, monkeypatch, implicit):
    ds = _base(MR, "1.2.826.0.1.9", "1.2.826.0.1.9.1", "d", "p", 1, 4, 4)
    ds.SpecificCharacterSet = ["ISO_IR 100"]
    ds.InstanceNumber = 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    for kw, (vr, raw) in ODD.items():
        tag = pydicom.datadict.tag_for_keyword(kw)
        ds[tag] = DataElement(tag, vr, raw)  # written as it stands
    ds.RescaleSlope, ds.RescaleIntercept = "2.5", "-10"
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    p = tmp_path / "odd.dcm"
    ds.save_as(p, enforce_file_format=True)
    p.write_bytes(p.read_bytes().replace(b"7777", b"abc "))
    fast, slow = _both_routes(p, monkeypatch)
    assert isinstance(fast, dict) and _same(fast, slow), {k: (fast[k], slow[k]) for k in fast if not _same(fast[k], slow[k])}
    assert fast["phi_referring_physician"] == "Smith^John^^^" and fast["series_number"] == 12
    assert fast["image_type"] == ["ORIGINAL", "PRIMARY", "M", "ND"] and fast["inversion_time"] is None


def test_fast_values_equal_pydicom_on_enhanced_mr(tmp_path, monkeypatch):
    frames = [{"position": (0, 0, z), "trigger": t, "slope": 2.0, "intercept": -1.5 * i}
              for i, (z, t) in enumerate([(8, 0), (0, 0), (8, 40), (0, 40)])]
    fast, slow = _both_routes(write_enhanced(tmp_path / "e.dcm", frames, ti=280), monkeypatch)
    assert _same(fast, slow) and fast["enhanced"] and fast["frame_trigger_times"] == [0, 0, 40, 40]


def _assert_direct_equals_full(path):
    h = read_header(path, require_mr=False)
    assert h["pixel_layout"] is not None, path
    full, direct = decode_file(path), decode_file(path, h["pixel_layout"])
    assert full.dtype == direct.dtype == np.float32 and full.shape == direct.shape
    assert full.tobytes() == direct.tobytes()


@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding:UserWarning")  # MR_small_padded.dcm is padded on purpose
@pytest.mark.parametrize("name", NATIVE)
def test_direct_pixel_read_equals_full_decode(name):
    _assert_direct_equals_full(real_file(name))


def test_direct_pixel_read_keeps_unused_bits_and_per_frame_rescale(tmp_path):
    frames = [{"position": (0, 0, i), "trigger": 0, "slope": 0.5 * (i + 1), "intercept": 3.0 - i, "value": 7 + i}
              for i in range(3)]
    p = write_enhanced(tmp_path / "e.dcm", frames)
    _assert_direct_equals_full(p)
    assert [float(v) for v in decode_file(p, read_header(p)["pixel_layout"])[:, 0, 0]] == [6.5, 10.0, 14.5]
    ds = pydicom.dcmread(real_file("MR_small.dcm"))  # signed 16 bit: keep 12, garbage in the top 4
    ds.BitsStored, ds.HighBit = 12, 11
    arr = ds.pixel_array.astype(np.int16)
    ds.PixelData = (arr | np.int16(-16384)).tobytes()  # bits 14-15 set: not part of the value
    ds.save_as(tmp_path / "s.dcm")
    _assert_direct_equals_full(tmp_path / "s.dcm")


@pytest.mark.parametrize("name", NOT_DIRECT)
def test_files_without_a_layout_decode_as_before(name):
    h = read_header(real_file(name), require_mr=False)
    assert h["pixel_layout"] is None


def test_no_file_meta_gets_no_layout(tmp_path):
    assert read_header(no_file_meta(tmp_path / "x.dcm"))["pixel_layout"] is None


def test_a_file_changed_since_indexing_is_read_in_full(tmp_path):
    p = write_mr(tmp_path / "a.dcm", value=5)
    layout = read_header(p)["pixel_layout"]
    write_mr(p, value=9)  # same size, new pixels
    os.utime(p, ns=(layout["mtime_ns"] + 10**9, layout["mtime_ns"] + 10**9))
    assert float(decode_file(p, layout)[0, 0, 0]) == 9.0
    p.write_bytes(p.read_bytes()[:200])  # and cut short: the full read says what is wrong
    with pytest.raises(Exception):
        decode_file(p, layout)


def test_load_grid_with_layouts_equals_without(tmp_path):
    paths = [write_mr(tmp_path / f"{i}.dcm", instance=i + 1, value=10 * i, slope=1.5, intercept=-2) for i in range(4)]
    layouts = {str(p): read_header(p)["pixel_layout"] for p in paths}
    grid = [[(str(paths[0]), 0), (str(paths[1]), 0)], [(str(paths[2]), 0), (str(paths[3]), 0)]]
    assert load_grid(grid, layouts).tobytes() == load_grid(grid).tobytes()
    assert load_grid(grid, layouts)[:, :, 0, 0].tolist() == [[-2.0, 13.0], [28.0, 43.0]]


def _scanned(path) -> bool:
    return headers._scan(path) is not None


@pytest.mark.parametrize("name", sorted(n for n, (_, _, stage) in FAULTS.items() if stage == "header"))
def test_scan_gives_pydicoms_error_on_broken_files(name, tmp_path, monkeypatch):
    fast, slow = _both_routes(make_fault(name, tmp_path / "f.dcm"), monkeypatch)
    assert _same(fast, slow)
    if name != "non_mr":  # read with require_mr=False, so a CT file is no error here
        assert isinstance(fast, str) and FAULTS[name][1] in fast


def test_scan_takes_plain_files_and_declines_the_rest(tmp_path):
    assert _scanned(real_file("MR_small.dcm")) and _scanned(real_file("MR_small_implicit.dcm"))
    assert _scanned(real_file("MR_small_RLE.dcm")) and _scanned(real_file("emri_small_jpeg_ls_lossless.dcm"))
    assert not _scanned(real_file("MR_small_bigendian.dcm")) and not _scanned(real_file("image_dfl.dcm"))
    assert not _scanned(no_file_meta(tmp_path / "m.dcm"))
    frames = [{"position": (0, 0, 0), "trigger": 0}]
    assert not _scanned(write_enhanced(tmp_path / "e.dcm", frames))  # sequences: pydicom
    cut = real_file("MR_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(cut[:600])  # ends inside the header
    assert not _scanned(tmp_path / "cut.dcm")


@pytest.mark.parametrize("implicit", [False, True])
def test_scan_equals_pydicom_with_private_and_long_elements(tmp_path, monkeypatch, implicit):
    """Private tags, a value longer than the first read (16 KiB), an OB element, a sequence of
    defined length (declined to pydicom), all before the pixel data."""
    ds = _base(MR, "1.2.826.0.1.9", "1.2.826.0.1.9.1", "cine sax", "p", 1, 4, 4)
    ds.InstanceNumber = 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.add_new(0x00291010, "OB", b"\x01" * 40000)          # a long private blob
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.ImageComments = "x" * 9000                            # LT, long
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    p = tmp_path / "long.dcm"
    ds.save_as(p, enforce_file_format=True)
    assert _scanned(p)
    fast, slow = _both_routes(p, monkeypatch)
    assert isinstance(fast, dict) and _same(fast, slow)
    assert fast["series_description"] == "cine sax" and fast["pixel_layout"]["nbytes"] == 32
    assert decode_file(p, fast["pixel_layout"]).tobytes() == decode_file(p).tobytes()
    ds.ReferencedImageSequence = [pydicom.Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    ds.save_as(p, enforce_file_format=True)
    assert not _scanned(p)
    fast, slow = _both_routes(p, monkeypatch)
    assert _same(fast, slow)


def test_memoised_values_are_copies_and_forgotten_after_an_index_batch(tmp_path, monkeypatch):
    """Values converted once per (VR, bytes) give the same header on a second read; a list a
    caller changes does not change the next file's; index_batch leaves no value behind."""
    import pyarrow as pa

    from cmr_ray.data.index import index_batch

    path = real_file("MR_small.dcm")
    headers.forget_values()
    first = read_header(path)
    assert headers._MEMO  # something was kept
    scanned, _ = headers._scan(path)
    for kw in ("ImageType", "ImageOrientationPatient"):  # multi-valued CS and DS: lists
        value = headers._get(scanned, kw)
        assert isinstance(value, list) and len(value) > 1
        value.append("CHANGED")
        assert "CHANGED" not in headers._get(scanned, kw)
    again = read_header(path)
    _, slow = _both_routes(path, monkeypatch)
    assert _same(again, slow)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(open(path, "rb").read())
    out = index_batch(pa.table({"path": ["a/x.dcm", "a/missing.dcm"]}), str(tmp_path))
    assert out["error"].to_pylist()[0] is None and "not found" in out["error"].to_pylist()[1]
    assert not headers._MEMO
