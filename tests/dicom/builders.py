"""Small synthetic MR files written with pydicom, for geometry/timing/classification tests.

    write_mr(path, series="1.2.3.4", position=(0, 0, 5), trigger=40.0, ...)  # one image
    write_stack(dir, n_slices=6, n_phases=10, normal=SAX_NORMAL, desc="SAX_FIESTA")
    write_enhanced(path, frames=[{"position": ..., "trigger": ..., "slope": ...}, ...])
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SAX_NORMAL = tuple(np.array([0.55, -0.45, 0.70]) / np.linalg.norm([0.55, -0.45, 0.70]))
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def orientation_for(normal) -> tuple:
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    helper = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    row = np.cross(n, helper)
    row /= np.linalg.norm(row)
    col = np.cross(n, row)
    return tuple(float(x) for x in (*row, *col))


def _base(sop_class, study, series, desc, protocol, series_number, rows, cols) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SeriesDescription, ds.ProtocolName = desc, protocol
    ds.SeriesNumber = series_number
    ds.PatientName, ds.PatientID, ds.AccessionNumber = "ZZTEST^PATIENT", "PID998877", "ACC554433"
    ds.StudyDate, ds.PatientBirthDate, ds.InstitutionName = "20210314", "19600102", "Test Hospital"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def write_mr(path, *, study="1.2.826.0.1.1", series="1.2.826.0.1.1.1", desc="", protocol="", series_number=1,
             instance=1, position=(0.0, 0.0, 0.0), orientation=AXIAL, trigger=None, cni=None, ti=None,
             rows=8, cols=8, value=None, slice_location=None, image_type=("ORIGINAL", "PRIMARY", "M"),
             slope=None, intercept=None, extra=None, private=(), syntax=None) -> Path:
    """`extra` {keyword: value} sets more elements; `private` [(group, creator, element, VR,
    value)] writes private ones as their maker does; `syntax` the transfer syntax (native)."""
    ds = _base(MR, study, series, desc, protocol, series_number, rows, cols)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    for kw, v in (extra or {}).items():
        setattr(ds, kw, v)
    for group, creator, element, vr, v in private:
        ds.private_block(group, creator, create=True).add_new(element, vr, v)
    if instance is not None:
        ds.InstanceNumber = instance
    ds.ImageType = list(image_type)
    ds.ImagePositionPatient = [float(x) for x in position]
    ds.ImageOrientationPatient = [float(x) for x in orientation]
    ds.PixelSpacing, ds.SliceThickness = [1.5, 1.5], 8.0
    if trigger is not None:
        ds.TriggerTime = float(trigger)
    if cni is not None:
        ds.CardiacNumberOfImages = cni
    if ti is not None:
        ds.InversionTime = float(ti)
    if slice_location is not None:
        ds.SliceLocation = float(slice_location)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    v = instance or 1 if value is None else value
    ds.PixelData = np.full((rows, cols), v, np.uint16).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_stack(folder, *, n_slices=1, n_phases=1, normal=SAX_NORMAL, desc="", spacing=8.0, series=None,
                study="1.2.826.0.1.1", series_number=1, ti=None, cni="auto", origin=(10.0, -20.0, 30.0),
                rr=800.0, **kw) -> list[Path]:
    """Files for a stack: slice s, phase t has value 100*s + t + 1 and TriggerTime t*rr/n_phases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series = series or generate_uid()
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    out = []
    for s in range(n_slices):
        pos = np.asarray(origin) + s * spacing * n
        for t in range(n_phases):
            inst = s * n_phases + t + 1
            out.append(write_mr(folder / f"{series_number}_{inst:03d}.dcm", study=study, series=series, desc=desc,
                                series_number=series_number, instance=inst, position=pos,
                                orientation=orientation_for(n), trigger=t * rr / n_phases if n_phases > 1 else 0.0,
                                cni=(n_phases if cni == "auto" else cni), ti=ti, value=100 * s + t + 1, **kw))
    return out


def write_enhanced(path, frames, *, orientation=AXIAL, study="1.2.826.0.1.2", series="1.2.826.0.1.2.1",
                   desc="SAX_CINE", rows=6, cols=6, ti=None) -> Path:
    """Enhanced MR file; each frame dict has position, trigger, optional slope/intercept/value."""
    ds = _base(ENHANCED_MR, study, series, desc, "", 1, rows, cols)
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = len(frames)
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [float(x) for x in orientation]
    shared.PlaneOrientationSequence = Sequence([po])
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness = [1.25, 1.25], 6.0
    shared.PixelMeasuresSequence = Sequence([pm])
    if ti is not None:
        mod = Dataset()
        mod.InversionTimes = [float(ti)]
        shared.MRModifierSequence = Sequence([mod])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items, pixels = [], []
    for i, f in enumerate(frames):
        it = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [float(x) for x in f["position"]]
        it.PlanePositionSequence = Sequence([pp])
        cs = Dataset()
        cs.NominalCardiacTriggerDelayTime = float(f["trigger"])
        it.CardiacSynchronizationSequence = Sequence([cs])
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept = f.get("slope", 1.0), f.get("intercept", 0.0)
        pvt.RescaleType = "US"
        it.PixelValueTransformationSequence = Sequence([pvt])
        items.append(it)
        pixels.append(np.full((rows, cols), f.get("value", i + 1), np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.PixelData = np.stack(pixels).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


def headers_of(paths):
    from cmr_ray.dicom.headers import read_header

    return [read_header(p) for p in paths]


__all__ = ["write_mr", "write_stack", "write_enhanced", "orientation_for", "headers_of", "SAX_NORMAL", "AXIAL",
           "pydicom"]
