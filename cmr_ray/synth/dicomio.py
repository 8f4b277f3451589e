"""Write a series as a scanner does: MR Image Storage, one file per image, or Enhanced MR
Image Storage, one multi-frame file with per-frame functional groups; optionally compressed.

    study = study_attributes(patient, manufacturer, model, uid("study"), uid("frame-of-reference"))
    n_files = write_series(folder, spec, frames, study, uid, rr_ms, "101500", compression="rle")

`frames` are (plane, slice_index, phase_index, trigger_ms, stored uint16 [rows, cols]).
`study` holds the patient/study/equipment attributes shared by every file of the study.
`uid(*parts)` (`uid_maker`) makes a deterministic UID from seed and study index, so the
same seed writes the same bytes.  Stored values are uint16 with 12 bits; the real
value is stored * RescaleSlope + RescaleIntercept (non-trivial for Philips, Siemens PSIR
and phase-contrast series).  Enhanced files also carry CardiacNumberOfImages at the top
level (Philips habit), so phase counts read the same way for both storage classes.
"""
from __future__ import annotations

import struct
import uuid
from pathlib import Path

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless, UID,
                         generate_uid)

from cmr_ray.synth.geometry import dot3
from cmr_ray.synth.patients import Patient
from cmr_ray.synth.protocol import SeriesSpec

MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4")
ENHANCED_MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4.1")
TRANSFER_SYNTAX = {"": ExplicitVRLittleEndian, "rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}
# a fixed 2.25 UID from a name-based UUID (generate_uid(prefix=None) would be random)
IMPLEMENTATION_UID = UID(f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'cmr-ray/synth').int}")


def uid_maker(seed: int, index: int):
    def uid(*parts) -> str:
        return generate_uid(entropy_srcs=["cmr-ray-synth", str(seed), str(index), *map(str, parts)])
    return uid


def _ds(v: float) -> str:
    """A DS value: at most 16 characters, stable across platforms."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if len(s) <= 16 else f"{v:.6g}"


def _dsl(vals) -> list[str]:
    return [_ds(float(v)) for v in vals]


def study_attributes(p: Patient, manufacturer: str, model: str, study_uid: str, frame_uid: str) -> Dataset:
    """The patient, study and equipment attributes every file of the study shares."""
    phi = p.phi
    attrs = {
        "SpecificCharacterSet": "ISO_IR 100",
        "StudyDate": phi["study_date"], "SeriesDate": phi["study_date"], "AcquisitionDate": phi["study_date"],
        "ContentDate": phi["study_date"], "StudyTime": phi["study_time"],
        "AccessionNumber": phi["accession_number"], "Modality": "MR", "Manufacturer": manufacturer,
        "InstitutionName": phi["institution"], "ReferringPhysicianName": phi["referring_physician"],
        "StationName": f"MR{p.index % 7 + 1:02d}", "StudyDescription": "CARDIAC MRI^Function and viability",
        "ManufacturerModelName": model, "PatientName": phi["patient_name"], "PatientID": phi["patient_id"],
        "PatientBirthDate": phi["birth_date"], "PatientSex": p.sex, "PatientAge": f"{p.age:03d}Y",
        "BodyPartExamined": "HEART", "MagneticFieldStrength": _ds(p.field_t), "PatientPosition": "HFS",
        "StudyInstanceUID": study_uid, "StudyID": phi["accession_number"][-6:],
        "FrameOfReferenceUID": frame_uid, "PositionReferenceIndicator": "",
        "HeartRate": str(int(round(p.heart_rate))),
    }
    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def _series_dataset(spec: SeriesSpec, study: Dataset, series_uid: str, rr_ms: float, time: str) -> Dataset:
    ds = Dataset()
    for elem in study:  # shared, never mutated: setting an attribute replaces the element
        ds.add(elem)
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.ImageType = list(spec.image_type)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = spec.number
    ds.AcquisitionNumber = 1
    ds.SeriesDescription = spec.description
    ds.ProtocolName = spec.description
    ds.ScanningSequence, ds.SequenceVariant = spec.scanning
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = _ds(spec.thickness)
    if spec.spacing_between:
        ds.SpacingBetweenSlices = _ds(spec.spacing_between)
    ds.RepetitionTime, ds.EchoTime, ds.FlipAngle = _dsl(spec.tr_te_flip)
    if spec.inversion_ms is not None:
        ds.InversionTime = _ds(spec.inversion_ms)
    ds.NominalInterval = str(int(round(rr_ms)))
    ds.CardiacNumberOfImages = spec.phases
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def _window(frames, spec) -> tuple[str, str]:
    vals = np.concatenate([f[4][::4, ::4].ravel() for f in frames]).astype(np.float64) * spec.slope + spec.intercept
    lo, hi = np.percentile(vals, [1, 99.5])
    return _ds(round((lo + hi) / 2)), _ds(round(max(hi - lo, 1)))


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = sop_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    fm.ImplementationClassUID = IMPLEMENTATION_UID
    fm.ImplementationVersionName = "CMRRAY_SYNTH"
    return fm


def _encode(elem: DataElement) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem)
    return fp.getvalue()


# per-image elements: keyword -> (tag, VR); everything else is the same in every file of a series
PER_IMAGE = {
    "SOPInstanceUID": (0x00080018, "UI"), "TriggerTime": (0x00181060, "DS"), "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"), "ImageOrientationPatient": (0x00200037, "DS"),
    "SliceLocation": (0x00201041, "DS"), "Rows": (0x00280010, "US"), "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"), "PixelData": (0x7FE00010, "OW"),
}


def _raw_element(tag: int, vr: str, value) -> bytes:
    """Explicit VR little endian encoding of the few VRs in PER_IMAGE."""
    if vr == "US":
        data = struct.pack("<H", value)
    elif vr == "OW":
        data = value
    else:
        text = "\\".join(value) if isinstance(value, (list, tuple)) else str(value)
        data = text.encode("ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
    if vr == "OW":
        return struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, b"OW", len(data)) + data
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(data)) + data


class SeriesWriter:
    """Writes the files of one uncompressed single-frame series.

    The elements common to the series are encoded once, each by pydicom's own element
    writer; the `PER_IMAGE` elements are encoded per file.  The bytes equal what
    ``ds.save_as(path, enforce_file_format=True)`` writes for the same dataset (checked
    in tests/synth), at a fraction of the cost, which matters at ~130 files per study."""

    def __init__(self, ds: Dataset, sop_class: str, cache: dict | None = None):
        self.sop_class = sop_class
        cache = {} if cache is None else cache  # (tag, value) -> bytes, shared by a study's series
        per_image = {t for t, _ in PER_IMAGE.values()}
        common = {}
        for e in ds:
            if e.tag not in per_image:
                key = (e.tag, e.VR, str(e.value))
                b = cache.get(key)
                common[e.tag] = b if b is not None else cache.setdefault(key, _encode(e))
        self.order = sorted(set(common) | {t for t, _ in PER_IMAGE.values()})
        self.common = common
        fm = _file_meta(sop_class, "1.2")
        fm.FileMetaInformationVersion = b"\x00\x01"
        self.meta = [(e.tag, _encode(e)) for e in fm]

    def write(self, path: Path, values: dict) -> None:
        per = {tag: _raw_element(tag, vr, values[kw]) for kw, (tag, vr) in PER_IMAGE.items()}
        sop = _raw_element(0x00020003, "UI", values["SOPInstanceUID"])
        meta = b"".join(sop if tag == 0x00020003 else b for tag, b in self.meta)
        head = b"\x00" * 128 + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(meta)) + meta
        body = b"".join(self.common[t] if t in self.common else per[t] for t in self.order)
        path.write_bytes(head + body)


def image_values(plane, n: int, sop: str, trig: float, arr: np.ndarray) -> dict:
    """The PER_IMAGE values of one image, as written."""
    return {
        "SOPInstanceUID": sop, "InstanceNumber": n, "ImagePositionPatient": _dsl(plane.origin),
        "ImageOrientationPatient": _dsl(plane.orientation), "SliceLocation": _ds(dot3(plane.origin, plane.normal)),
        "PixelSpacing": _dsl(plane.spacing), "Rows": plane.shape[0], "Columns": plane.shape[1], "TriggerTime": _ds(trig),
        "PixelData": np.ascontiguousarray(arr, dtype="<u2").tobytes(),
    }


def _set_pixels(ds: Dataset, arr: np.ndarray, compression: str) -> None:
    if compression:
        ds.compress(TRANSFER_SYNTAX[compression], arr, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = np.ascontiguousarray(arr, dtype="<u2").tobytes()
        ds["PixelData"].VR = "OW"


def write_series(folder: Path, spec: SeriesSpec, frames: list, study: Dataset, uid, rr_ms: float,
                 time: str, compression: str = "", cache: dict | None = None) -> int:
    """Write one series into `folder`; returns the number of files written.  `cache` (a dict
    kept for the study) saves re-encoding the elements all its series share."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = uid("series", spec.number)
    ds = _series_dataset(spec, study, series_uid, rr_ms, time)
    wc, ww = _window(frames, spec)
    if spec.enhanced:
        return _write_enhanced(folder, ds, spec, frames, uid, wc, ww, compression)
    ds.SOPClassUID = MR_IMAGE
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _ds(spec.intercept), _ds(spec.slope), "US"
    ds.WindowCenter, ds.WindowWidth = wc, ww
    fast = None if compression else SeriesWriter(ds, MR_IMAGE, cache)
    for n, (plane, s, t, trig, arr) in enumerate(frames, start=1):
        values = image_values(plane, n, uid("image", spec.number, n), trig, arr)
        if fast is not None:
            fast.write(folder / f"{n:04d}.dcm", values)
            continue
        ds.file_meta = _file_meta(MR_IMAGE, values["SOPInstanceUID"])
        for kw, v in values.items():
            if kw != "PixelData":
                setattr(ds, kw, v)
        _set_pixels(ds, arr, compression)
        ds.save_as(folder / f"{n:04d}.dcm", enforce_file_format=True)
    return len(frames)


def _item(**kw) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _write_enhanced(folder: Path, ds: Dataset, spec: SeriesSpec, frames, uid, wc, ww, compression) -> int:
    plane0 = frames[0][0]
    sop = uid("image", spec.number, 1)
    ds.file_meta = _file_meta(ENHANCED_MR_IMAGE, sop)
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR_IMAGE, sop
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CINE" if spec.phases > 1 else "M", "NONE"]
    ds.ContentQualification, ds.ResonantNucleus = "PRODUCT", "1H"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = plane0.shape
    for kw in ("SliceThickness", "SpacingBetweenSlices", "RepetitionTime", "EchoTime", "FlipAngle", "InversionTime",
               "ScanningSequence", "SequenceVariant"):
        if kw in ds:
            del ds[kw]
    measures = _item(PixelSpacing=_dsl(plane0.spacing), SliceThickness=_ds(spec.thickness))
    if spec.spacing_between:
        measures.SpacingBetweenSlices = _ds(spec.spacing_between)
    shared = _item(
        PixelMeasuresSequence=Sequence([measures]),
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=_dsl(plane0.orientation))]),
        PixelValueTransformationSequence=Sequence([_item(RescaleIntercept=_ds(spec.intercept), RescaleSlope=_ds(spec.slope), RescaleType="US")]),
        FrameVOILUTSequence=Sequence([_item(WindowCenter=wc, WindowWidth=ww)]),
        MRTimingAndRelatedParametersSequence=Sequence([_item(RepetitionTime=float(spec.tr_te_flip[0]), FlipAngle=float(spec.tr_te_flip[2]))]),
    )
    if spec.inversion_ms is not None:
        shared.MRModifierSequence = Sequence([_item(InversionRecovery="YES", InversionTimes=[float(spec.inversion_ms)])])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    org = uid("dimension", spec.number)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=org)])
    ds.DimensionIndexSequence = Sequence([
        _item(DimensionIndexPointer=0x00209057, FunctionalGroupPointer=0x00209111, DimensionOrganizationUID=org),  # InStackPositionNumber
        _item(DimensionIndexPointer=0x00209128, FunctionalGroupPointer=0x00209111, DimensionOrganizationUID=org),  # TemporalPositionIndex
    ])
    per = []
    for plane, s, t, trig, _ in frames:
        per.append(_item(
            FrameContentSequence=Sequence([_item(StackID="1", InStackPositionNumber=s + 1, TemporalPositionIndex=t + 1,
                                                 DimensionIndexValues=[s + 1, t + 1])]),
            PlanePositionSequence=Sequence([_item(ImagePositionPatient=_dsl(plane.origin))]),
            CardiacSynchronizationSequence=Sequence([_item(NominalCardiacTriggerDelayTime=float(trig))]),
        ))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    arr = np.stack([f[4] for f in frames])
    _set_pixels(ds, arr[0] if len(frames) == 1 else arr, compression)
    ds.save_as(folder / "0001.dcm", enforce_file_format=True)
    return 1
