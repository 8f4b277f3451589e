"""Shared fixtures for the synthetic-cohort tests.

`cohort`: a small cohort made by `generate_cohort` (8 studies, seed 8, two workers: it holds Enhanced MR, RLE and JPEG-LS studies).
`zoo`: one study per pathology with pinned storage formats (Enhanced MR, RLE, JPEG-LS,
JPEG 2000), so every disease and every format is covered whatever the seed draws.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cmr_ray.synth import generate_cohort, generate_study
from cmr_ray.synth.geometry import Plane
from cmr_ray.synth.patients import LABELS, sample_patient

ZOO_FORMATS = {  # pathology -> (enhanced, compression)
    "icm": (True, "rle"), "nicm": (False, "jpegls"), "amyloid": (False, "jpeg2000"), "hcm": (True, ""),
    "normal": (False, ""), "dcm": (False, "rle"), "rv": (False, ""),
}


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    summary = generate_cohort(out, studies=8, seed=8, workers=2, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """{pathology: (patient, result, study_dir)}"""
    dicom = tmp_path_factory.mktemp("zoo") / "dicom"
    out = {}
    for i, pathology in enumerate(LABELS):
        p = sample_patient(11, i, pathology=pathology)
        p.enhanced, p.compression = ZOO_FORMATS[pathology]
        if pathology == "icm":
            p.territory, p.transmurality, p.lge_pattern = "LAD", 0.9, "transmural"
        r = generate_study(11, i, "small", dicom, patient=p)
        out[pathology] = (p, r, dicom / f"{i:05d}")
    return out


@functools.lru_cache(maxsize=16)
def read_study(study_dir: Path, pixels: bool = False) -> dict:
    """{series description: list of datasets sorted by InstanceNumber} (cached: treat as read-only)."""
    series = defaultdict(list)
    for f in sorted(Path(study_dir).rglob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=not pixels)
        series[str(ds.SeriesDescription)].append(ds)
    return {k: sorted(v, key=lambda d: int(d.InstanceNumber)) for k, v in series.items()}


def frames(datasets) -> list[dict]:
    """Per-image geometry and timing, from classic files or an Enhanced MR file's groups."""
    out = []
    for ds in datasets:
        if "PerFrameFunctionalGroupsSequence" in ds:
            sh = ds.SharedFunctionalGroupsSequence[0]
            iop = [float(v) for v in sh.PlaneOrientationSequence[0].ImageOrientationPatient]
            px = [float(v) for v in sh.PixelMeasuresSequence[0].PixelSpacing]
            tr = sh.PixelValueTransformationSequence[0]
            for k, fr in enumerate(ds.PerFrameFunctionalGroupsSequence):
                out.append(dict(ipp=np.array([float(v) for v in fr.PlanePositionSequence[0].ImagePositionPatient]),
                                iop=np.array(iop), spacing=px, shape=(int(ds.Rows), int(ds.Columns)),
                                trigger=float(fr.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime),
                                slope=float(tr.RescaleSlope), intercept=float(tr.RescaleIntercept), ds=ds, frame=k))
        else:
            out.append(dict(ipp=np.array([float(v) for v in ds.ImagePositionPatient]),
                            iop=np.array([float(v) for v in ds.ImageOrientationPatient]),
                            spacing=[float(v) for v in ds.PixelSpacing], shape=(int(ds.Rows), int(ds.Columns)),
                            trigger=float(ds.TriggerTime), slope=float(ds.RescaleSlope),
                            intercept=float(ds.RescaleIntercept), ds=ds, frame=None))
    return out


def plane_of(fr: dict) -> Plane:
    return Plane(fr["ipp"], fr["iop"][:3], fr["iop"][3:], tuple(fr["spacing"]), fr["shape"])


def pixels_of(fr: dict) -> np.ndarray:
    arr = fr["ds"].pixel_array
    if arr.ndim == 3:
        arr = arr[fr["frame"]]
    return arr.astype(np.float64) * fr["slope"] + fr["intercept"]


def series_by_key(study: dict, patient, protocol: str = "small") -> dict:
    """Map generator keys (cine_sax, lge_2ch, ...) onto the study's series via the protocol."""
    from cmr_ray.synth.phantom import Phantom
    from cmr_ray.synth.protocol import study_protocol

    rng = np.random.default_rng([patient.seed, patient.index, 3])
    specs = study_protocol(patient, Phantom(patient), protocol, rng)
    return {s.key: study[s.description] for s in specs}
