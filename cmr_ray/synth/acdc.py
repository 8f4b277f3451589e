"""The synthetic cohort's cine short axis in ACDC's own layout (NIfTI + Info.cfg).

    from cmr_ray.synth.acdc import generate_acdc
    generate_acdc("acdc", studies=150, seed=0)        # or: cmr-ray synth --format acdc acdc --studies 150

Writes ``OUT/training/patientNNN/`` (the first two thirds, as ACDC's 100 of 150) and
``OUT/testing/patientNNN/`` with ``Info.cfg`` (``ED``, ``ES``, ``Group``, ``Height``,
``NbFrame``, ``Weight``), ``patientNNN_4d.nii.gz`` (int16, x, y, slice, time) and the ED and
ES frames ``patientNNN_frameXX.nii.gz`` (3D; no ``_gt`` segmentations), and ``OUT/acdc.json``
last (the marker of a complete set).  Patient ``NNN`` is study ``NNN - 1`` of the DICOM
cohort with the same seed and protocol: the same heart, planes and group (``Group`` is the
patient's ``acdc`` label), with its own noise draw (the DICOM cohort's noise stream also
feeds its other series).  Height and weight are stand-ins made from sex and body size.

Geometry (what `cmr_ray.data.acdc` reads back): data[i, j, k, t] = DICOM frame[row j,
column i] of SAX plane k, planes in ACDC's file order base -> apex; the affine (RAS, qform
and sform code 1) holds the planes' row and column directions and pixel spacing and the
step between planes, so it is left-handed and the reader orders the slices apex -> base, as
the DICOM path does with the same planes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_from_planes(planes, thickness: float = 8.0) -> np.ndarray:
    """4x4 RAS affine of a stack of parallel `geometry.Plane`s in list order (i: columns, j: rows)."""
    p0 = planes[0]
    dr, dc = p0.spacing
    step = (planes[1].origin - p0.origin) if len(planes) > 1 else -np.asarray(p0.normal) * thickness
    a = np.eye(4)
    a[:3, 0] = LPS_TO_RAS @ (np.asarray(p0.row) * dc)
    a[:3, 1] = LPS_TO_RAS @ (np.asarray(p0.col) * dr)
    a[:3, 2] = LPS_TO_RAS @ np.asarray(step, np.float64)
    a[:3, 3] = LPS_TO_RAS @ np.asarray(p0.origin, np.float64)
    return a


def info_text(info: dict) -> str:
    """Info.cfg as ACDC writes it: one 'Key: value' line per entry."""
    return "".join(f"{k}: {v}\n" for k, v in info.items())


def write_nifti(path, data: np.ndarray, affine: np.ndarray, dt_ms: float | None = None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "msec")
    if dt_ms is not None and data.ndim == 4:
        img.header.set_zooms(img.header.get_zooms()[:3] + (float(dt_ms),))
    tmp = f"{path}.tmp-{os.getpid()}.nii.gz"
    nib.save(img, tmp)
    os.replace(tmp, path)


def write_acdc_patient(folder, name: str, cine: np.ndarray, affine: np.ndarray, info: dict,
                       frame_files: bool = True, dt_ms: float | None = None) -> list[str]:
    """One ACDC patient folder: Info.cfg, NAME_4d.nii.gz from `cine` [x, y, slice, time] and
    (frame_files) the ED and ES frames as 3D files.  Returns the file names written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.cfg").write_text(info_text(info))
    write_nifti(folder / f"{name}_4d.nii.gz", cine, affine, dt_ms)
    names = ["Info.cfg", f"{name}_4d.nii.gz"]
    if frame_files:
        for k in ("ED", "ES"):
            f = int(info[k])
            fn = f"{name}_frame{f:02d}.nii.gz"
            if fn not in names:
                write_nifti(folder / fn, np.ascontiguousarray(cine[..., f - 1]), affine)
                names.append(fn)
    return names


def patient_name(index: int, studies: int) -> str:
    return f"patient{index + 1:0{max(3, len(str(studies)))}d}"


def n_training(studies: int) -> int:
    """ACDC's 100 training of 150: two thirds, at least one patient in each folder when there are two."""
    return studies if studies < 2 else min(studies - 1, max(1, round(studies * 2 / 3)))


def acdc_patient(seed: int, index: int, protocol: str, out, studies: int) -> dict:
    """Render study `index`'s cine SAX and write its ACDC folder; returns its summary row."""
    from cmr_ray.synth.patients import sample_patient
    from cmr_ray.synth.phantom import Phantom
    from cmr_ray.synth.protocol import study_protocol

    p = sample_patient(seed, index)
    ph = Phantom(p)
    spec = next(s for s in study_protocol(p, ph, protocol, np.random.default_rng([seed, index, 3]))
                if s.key == "cine_sax")
    rng = np.random.default_rng([seed, index, 11])
    gain = rng.uniform(900, 1500)
    planes, T = spec.planes, spec.phases
    rows, cols = planes[0].shape
    cine = np.zeros((cols, rows, len(planes), T), np.int16)
    for k, plane in enumerate(planes):
        for t in range(T):
            img, _ = ph.render(plane, "cine", t / T)
            real = ph.noisy(img, plane, rng) * gain
            cine[:, :, k, t] = np.clip(np.rint(real), 0, 32767).astype(np.int16).T
    es = min(T, int(round(p.t_es * T)) + 1)
    male = p.sex == "M"
    info = {"ED": 1, "ES": es, "Group": p.labels()["acdc"],
            "Height": round((175.0 if male else 162.0) * p.body_scale ** 0.25, 1),
            "NbFrame": T, "Weight": round((80.0 if male else 66.0) * p.body_scale ** 2, 1)}
    name = patient_name(index, studies)
    where = "training" if index < n_training(studies) else "testing"
    rr_ms = 60000.0 / p.heart_rate
    files = write_acdc_patient(Path(out) / where / name, name, cine, affine_from_planes(planes, spec.thickness),
                               info, dt_ms=rr_ms / T)
    return {"index": index, "patient": f"{where}/{name}", "group": info["Group"], "files": len(files)}


def _work(args):
    try:
        return acdc_patient(*args)
    except Exception as e:
        raise RuntimeError(f"synth acdc: study {args[1]} (seed {args[0]}) failed: {type(e).__name__}: {e}") from e


def generate_acdc(out, studies: int = 150, seed: int = 0, protocol: str = "small", workers: int | None = None,
                  progress: bool = True, overwrite: bool = False) -> dict:
    """Write the ACDC-layout stand-in into `out`; returns the summary also saved as out/acdc.json."""
    from cmr_ray.synth.cohort import read_marker
    from cmr_ray.synth.protocol import PROTOCOLS

    if studies < 1:
        raise ValueError(f"studies must be >= 1, got {studies}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    out = Path(out)
    marker = out / "acdc.json"
    want = {"format": "acdc", "format_version": FORMAT_VERSION, "studies": studies, "seed": seed, "protocol": protocol}
    if marker.exists() and not overwrite:
        done = read_marker(marker)
        if {k: done.get(k) for k in want} == want:
            if progress:
                print(f"synth: {out} already holds this ACDC-layout set ({studies} patients, seed {seed}, {protocol})",
                      file=sys.stderr)
            return done
        raise FileExistsError(f"{out}: holds a different set ({marker}); pass overwrite=True (--overwrite) to replace it")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: not empty and no acdc.json; pass overwrite=True (--overwrite) to replace it")
        for sub in ("training", "testing"):
            shutil.rmtree(out / sub, ignore_errors=True)
        marker.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, studies))
    jobs = [(seed, i, protocol, str(out), studies) for i in range(studies)]
    t0, step = time.perf_counter(), max(1, studies // 10)
    results = []
    if workers == 1:
        it = map(_work, jobs)
        pool = None
    else:
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(workers)
        it = pool.imap_unordered(_work, jobs, chunksize=2)
    try:
        for n, r in enumerate(it, start=1):
            results.append(r)
            if progress and (n % step == 0 or n == studies):
                print(f"synth acdc: {n}/{studies} patients, {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    results.sort(key=lambda r: r["index"])
    groups: dict = {}
    for r in results:
        groups[r["group"]] = groups.get(r["group"], 0) + 1
    n_train = n_training(studies)
    summary = {**want, "training": n_train, "testing": studies - n_train, "files": sum(r["files"] for r in results),
               "groups": dict(sorted(groups.items()))}
    marker.write_text(json.dumps(summary, indent=1) + "\n")
    if progress:
        print(f"synth acdc: wrote {studies} patients to {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return summary


__all__ = ["generate_acdc", "write_acdc_patient", "affine_from_planes", "info_text"]
