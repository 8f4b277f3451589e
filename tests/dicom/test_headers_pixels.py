"""read_header / decode_file on real vendor files, damaged files and synthetic Enhanced MR."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.dicom import PHI_KEYS, DicomReadError, decode_file, load_grid, read_header
from tests.dicom.builders import write_enhanced
from tests.dicom.faults import FAULTS, make_fault, no_file_meta, no_transfer_syntax, real_file

# every encoding of pydicom's MR_small holds the same 64x64 image
MR_SMALL = ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm",
            "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"]
# the same 10-frame multi-frame MR in several syntaxes (pydicom-data)
EMRI = ["emri_small.dcm", "emri_small_big_endian.dcm", "emri_small_RLE.dcm",
        "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"]


@pytest.mark.parametrize("name", MR_SMALL)
def test_mr_small_every_syntax_reads_and_decodes_identically(name):
    h = read_header(real_file(name))
    assert (h["modality"], h["rows"], h["columns"], h["number_of_frames"]) == ("MR", 64, 64, 1)
    assert len(h["image_orientation"]) == 6 and len(h["image_position"]) == 3
    ref = decode_file(real_file("MR_small.dcm"))
    np.testing.assert_array_equal(decode_file(real_file(name)), ref)


@pytest.mark.parametrize("name", EMRI)
def test_classic_multiframe_mr_every_syntax(name):
    h = read_header(real_file(name))
    assert h["number_of_frames"] == 10 and h["sop_class_uid"].endswith(".4.1")
    ref = decode_file(real_file("emri_small.dcm"))
    got = decode_file(real_file(name))
    assert got.shape == (10, 64, 64)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name,shape", [("image_dfl.dcm", (1, 512, 512)),        # deflate
                                        ("SC_rgb_jpeg_dcmtk.dcm", (1, 100, 100)),  # JPEG baseline, colour
                                        ("JPEG-LL.dcm", (1, 1024, 256)),           # JPEG lossless
                                        ("JPEG2000.dcm", (1, 1024, 256)),
                                        ("MR2_J2KR.dcm", (1, 1024, 1024))])
def test_other_syntaxes_decode(name, shape):
    h = read_header(real_file(name), require_mr=False)
    assert h["has_pixel_data"]
    vol = decode_file(real_file(name))
    assert vol.shape == shape and vol.dtype == np.float32 and np.ptp(vol) > 0


def test_jpeg_lossless_equals_uncompressed_original():
    a, b = decode_file(real_file("MR2_J2KR.dcm")), decode_file(real_file("MR2_UNCR.dcm"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,reason", [("CT_small.dcm", "modality CT is not MR"),
                                         ("test-SR.dcm", "modality SR is not MR"),
                                         ("US1_J2KR.dcm", "modality US is not MR"),
                                         ("MR_truncated.dcm", "truncated: pixel data needs 8192 bytes"),
                                         ("no_meta.dcm", "not a DICOM file")])
def test_real_bad_files_give_specific_reasons(name, reason):
    with pytest.raises(DicomReadError) as e:
        read_header(real_file(name))
    assert e.value.reason.startswith(reason)
    assert "\n" not in str(e.value) and real_file(name).name in str(e.value)


def test_fault_corpus_each_gives_its_own_reason(tmp_path):
    reasons = {}
    for name, (_, expected, stage) in FAULTS.items():
        p = make_fault(name, tmp_path / f"{name}.dcm")
        with pytest.raises(DicomReadError) as e:
            read_header(p)
            assert stage == "pixels", f"{name}: read_header accepted it"
            decode_file(p)
        assert e.value.reason.startswith(expected), (name, e.value.reason)
        reasons[name] = e.value.reason
    assert len(set(reasons.values())) == len(reasons)  # every fault is told apart


def test_missing_file(tmp_path):
    with pytest.raises(DicomReadError, match="file not found"):
        read_header(tmp_path / "nope.dcm")


@pytest.mark.parametrize("builder", [no_file_meta, no_transfer_syntax])
def test_missing_file_meta_is_recovered(tmp_path, builder):
    p = builder(tmp_path / "x.dcm")
    h = read_header(p)
    assert h["file_meta_missing"] and h["series_instance_uid"]
    np.testing.assert_array_equal(decode_file(p), decode_file(real_file("MR_small.dcm")))


def test_phi_fields_are_strings_and_marked():
    h = read_header(real_file("MR_small.dcm"))
    assert all(isinstance(h[k], str) for k in PHI_KEYS)
    assert h["phi_patient_name"] == "CompressedSamples^MR1"
    assert not any(k for k in h if k.startswith("phi_") and k not in PHI_KEYS)


def test_enhanced_mr_per_frame_groups(tmp_path):
    frames = [{"position": (0, 0, z), "trigger": t, "slope": 2.0, "intercept": -10.0 * i, "value": 5}
              for i, (z, t) in enumerate([(8, 0), (0, 0), (8, 40), (0, 40)])]
    p = write_enhanced(tmp_path / "e.dcm", frames, ti=280)
    h = read_header(p)
    assert h["enhanced"] and h["number_of_frames"] == 4
    assert h["frame_positions"] == [[0, 0, 8], [0, 0, 0], [0, 0, 8], [0, 0, 0]]
    assert h["frame_trigger_times"] == [0, 0, 40, 40]
    assert h["pixel_spacing"] == [1.25, 1.25] and h["inversion_time"] == 280
    vol = decode_file(p)  # per-frame Pixel Value Transformation: 5 * 2 - 10 i
    assert [float(vol[i, 0, 0]) for i in range(4)] == [10.0, 0.0, -10.0, -20.0]


def test_load_grid_reads_cells_and_checks_shapes(tmp_path):
    a = real_file("MR_small.dcm")
    vol = load_grid([[(str(a), 0)], [(str(a), 0)]])
    assert vol.shape == (2, 1, 64, 64)
    with pytest.raises(DicomReadError, match="Rows x Columns 128x128 differs from the series' 64x64"):
        load_grid([[(str(a), 0)], [(str(real_file("CT_small.dcm")), 0)]])  # CT_small is 128 x 128
    with pytest.raises(DicomReadError, match="frame 10 requested"):
        load_grid([[(str(real_file("emri_small.dcm")), 10)]])
