"""Builders for the data pipeline tests: hand-made header tables (pure planning tests)
and a tiny DICOM writer (real files, no synthetic cohort needed)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

# Oblique planes like a cardiac exam: SAX and three long-axis views at an angle to it.
ORIENT = {
    "sax": (0.8, 0.6, 0.0, -0.36, 0.48, -0.8),
    "4ch": (0.6, -0.8, 0.0, 0.0, 0.0, -1.0),
    "2ch": (0.28, 0.96, 0.0, 0.0, 0.0, -1.0),
    "3ch": (0.96, -0.28, 0.0, 0.0, 0.0, -1.0),
}
DESC = {("cine", "sax"): "cine_sax", ("cine", "4ch"): "cine_4ch", ("cine", "2ch"): "cine_2ch",
        ("cine", "3ch"): "cine_3ch", ("lge", "sax"): "LGE_PSIR_SAX", ("lge", "4ch"): "LGE_PSIR_4ch",
        ("lge", "2ch"): "LGE_PSIR_2ch", ("lge", "3ch"): "LGE_PSIR_3ch"}


def _normal(o):
    n = np.cross(np.asarray(o[:3], float), np.asarray(o[3:], float))
    return n / np.linalg.norm(n)


def series_headers(root, study, series, seq, view, *, slices=None, phases=None, patient="PAT1",
                   accession="ACC1", series_number=1, description=None, name="Doe^Jane"):
    """Header dicts shaped like `cmr_ray.dicom.headers.read_header` output (no files)."""
    slices = slices or (6 if view == "sax" else 1)
    phases = phases or (12 if seq == "cine" else 1)
    o = ORIENT[view]
    n = _normal(o)
    out, inst = [], 0
    for s in range(slices):
        pos = [float(x) for x in (np.array([-100.0, -80.0, 40.0]) + s * 8.0 * n)]
        for t in range(phases):
            inst += 1
            rel = f"{study}/{series}/{inst:04d}.dcm"
            out.append({
                "path": os.path.join(str(root), rel), "sop_instance_uid": f"1.2.3.{study}.{series}.{inst}",
                "study_instance_uid": f"1.2.826.{study}", "series_instance_uid": f"1.2.826.{study}.{series}",
                "modality": "MR", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.4", "transfer_syntax": "1.2.840.10008.1.2.1",
                "file_meta_missing": False, "manufacturer": "TEST",
                "series_description": description if description is not None else DESC[(seq, view)],
                "protocol_name": "", "series_number": series_number, "instance_number": inst,
                "image_type": ["ORIGINAL", "PRIMARY", "M"], "image_orientation": list(o),
                "image_position": pos, "pixel_spacing": [1.5, 1.5], "slice_thickness": 8.0,
                "slice_location": None, "trigger_time": 40.0 * t if seq == "cine" else 400.0,
                "cardiac_number_of_images": phases if seq == "cine" else 1,
                "inversion_time": 300.0 if seq == "lge" else None, "frame_time": None,
                "rows": 32, "columns": 32, "number_of_frames": 1, "samples_per_pixel": 1,
                "rescale_slope": None, "rescale_intercept": None, "has_pixel_data": True,
                "enhanced": False, "frame_positions": None, "frame_orientations": None,
                "frame_trigger_times": None, "frame_slopes": None, "frame_intercepts": None,
                "frame_stack_positions": None, "frame_temporal_indices": None, "frame_inversion_times": None,
                "phi_patient_id": patient, "phi_patient_name": name, "phi_accession_number": accession,
                "phi_study_date": "20200101", "phi_birth_date": "19600101", "phi_institution": "Test Hospital",
            })
    return out


def index_rows(headers, root):
    return [{"path": os.path.relpath(h["path"], str(root)).replace(os.sep, "/"), "header": h, "error": None}
            for h in headers]


# ------------------------------------------------------------------ real tiny DICOM files

def write_dicom(path, *, study_uid, series_uid, sop_uid, description, orientation, position,
                instance, trigger_time, phases, pixels, patient="PAT1", accession="ACC1",
                series_number=1, inversion_time=None, name="Doe^Jane", birth="19600101",
                institution="Test Hospital", study_date="20200101", hook=None):
    """One classic MR image.  `hook(ds, path)` may change the dataset, or write the file
    itself (return True) or skip it (return False)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "MR", description, series_number, instance
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, patient, birth
    ds.AccessionNumber, ds.InstitutionName, ds.StudyDate = accession, institution, study_date
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
    ds.PixelSpacing, ds.SliceThickness = [1.5, 1.5], 8.0
    ds.TriggerTime, ds.CardiacNumberOfImages = trigger_time, phases
    if inversion_time is not None:
        ds.InversionTime = inversion_time
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if hook is not None:
        done = hook(ds, path)
        if done is not None:
            return
    ds.save_as(path, enforce_file_format=True)


def write_study(dicom_dir: Path, idx: int, views=(("cine", "sax"), ("cine", "4ch"), ("lge", "sax")),
                size=24, slices=3, phases=5, rng=None, hook=None):
    """A small study on disk; returns its PHI values.  Folder names carry no PHI.
    `hook(ds, path, seq, view, s, t)` is passed to `write_dicom` for every image."""
    rng = rng or np.random.default_rng(idx)
    phi = dict(patient=f"PID{idx:04d}X", accession=f"ACC{idx:04d}Q", name=f"Zyxw^Patient{idx}",
               birth=f"1950{idx % 12 + 1:02d}1{idx % 9}", institution=f"Hospital Qwerty {idx}",
               study_date=f"2019{idx % 12 + 1:02d}2{idx % 9}")
    study_uid = f"1.2.826.0.9.{idx}"
    for k, (seq, view) in enumerate(views, 1):
        ns = slices if view == "sax" else 1
        nt = phases if seq == "cine" else 1
        o = ORIENT[view]
        n = _normal(o)
        inst = 0
        for s in range(ns):
            for t in range(nt):
                inst += 1
                pix = (rng.random((size, size)) * 1000 + 100 * t + 50 * s).astype(np.uint16)
                write_dicom(dicom_dir / f"study{idx:03d}" / f"series{k:02d}" / f"{inst:03d}.dcm",
                            study_uid=study_uid, series_uid=f"{study_uid}.{k}", sop_uid=f"{study_uid}.{k}.{inst}",
                            description=DESC[(seq, view)], orientation=o,
                            position=np.array([-100.0, -80.0, 40.0]) + s * 8.0 * n, instance=inst,
                            trigger_time=40.0 * t if seq == "cine" else 0.0, phases=nt, pixels=pix,
                            series_number=k, inversion_time=300.0 if seq == "lge" else None,
                            hook=None if hook is None else
                            (lambda ds, p, a=(seq, view, s, t): hook(ds, p, *a)), **phi)
    return phi


def write_reports(path: Path, phis: list[dict], extra_rows=()):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["accession_number", "report_text"])
        for p in phis:
            w.writerow([p["accession"], f"HISTORY: {p['name']} born {p['birth']}.\n"
                                        f"FINDINGS: normal.\nIMPRESSION: Normal LV size and function "
                                        f"for {p['name'].replace('^', ' ')}. MRN {p['patient']}."])
        for row in extra_rows:
            w.writerow(row)


# The manifest's file-system figures, not read from the files: as decimal text a 19-digit
# mtime_ns spells an 8-digit date now and then (1796682020082526943 holds 20200825, a PHI date
# of the synthetic cohort: a clean-clone `make test` failed once on that alone).
FILE_SYSTEM_COLUMNS = ("size", "mtime_ns")


def store_file_text(path) -> str:
    """Everything a PHI scan reads in one store file: its bytes as latin-1, and for Parquet its
    rows as JSON (compressed pages could hide a value from the byte scan), less the
    FILE_SYSTEM_COLUMNS."""
    import json

    import pyarrow.parquet as pq

    path = str(path)
    text = open(path, "rb").read().decode("latin-1")
    if path.endswith(".parquet"):
        rows = pq.read_table(path).to_pylist()
        text += json.dumps([{k: v for k, v in r.items() if k not in FILE_SYSTEM_COLUMNS} for r in rows], default=repr)
    return text
