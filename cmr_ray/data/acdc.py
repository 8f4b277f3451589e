"""`prepare --format acdc|mnms`: public cine short-axis sets in their own NIfTI layout -> the clip store.

    from cmr_ray.data.acdc import prepare_nifti
    summary = prepare_nifti("ACDC/database", "store_acdc", fmt="acdc", cfg=cfg, num_cpus=2)
    print(summary.text); summary.ok

    vol = read_cine("training/patient001/patient001_4d.nii.gz")   # float32 [S, T, H, W], oriented
    frames = to_store_frames(vol, image_size=64)                   # uint8 [S, T, 64, 64]

ACDC (`--format acdc`): ``ROOT/{training,testing}/patientNNN/`` with ``Info.cfg``
(``ED: 1``, ``ES: 12``, ``Group: DCM``, ``Height: 184.0``, ``NbFrame: 30``, ``Weight: 95.0``),
``patientNNN_4d.nii.gz`` (x, y, slice, time) and ``patientNNN_frameXX[_gt].nii.gz``.  A
patient folder is any folder named ``patientNNN`` at any depth (so ROOT may be the download,
its ``database/`` or a folder of patient folders).  M&Ms-1 (`--format mnms`) fits the same
reader with the differences in `LAYOUTS`: ``<code>/<code>_sa.nii.gz`` under
``Training/{Labeled,Unlabeled}``, ``Validation``, ``Testing``, and one CSV (``External code``,
``VendorName``, ``Centre``, ``ED``, ``ES``, ``Pathology``, ...) instead of Info.cfg.

Each patient becomes one store row: ``cine_sax`` (+ ``cine_sax_shape`` [S, T, H, W]), the
group as ``label_acdc`` (null when missing or unknown: stored, left out of probes, counted
as unlabelled), ``impression`` empty (no report), the binary labels null.  Study and patient
keys are salted hashes of ``<format>:<patient folder name>``.

Orientation (the DICOM path's pixel matrix and slice order, rebuilt from the header): the
NIfTI voxel axes i, j are taken as DICOM's column and row index (the convention of ITK,
SimpleITK, nibabel and dicom2nifti, which keep the pixel matrix and put the direction in the
affine), so ``frame[r, c] = data[c, r]`` and the pixel spacing is (zoom j, zoom i).  The
DICOM path sorts slices ascending along the normal ``row x col``; for a NIfTI that is the
direction of +k when the affine's 3x3 part has a positive determinant (a right-handed voxel
grid, read from k = 0 up) and of -k when it is negative (read from the last slice down).  A
header with neither qform nor sform (both codes 0) carries no orientation: slices are read
in file order.  (The handedness test is the same in RAS and LPS: the flip between them is a
rotation.)  The synthetic cohort's DICOM path gives apex -> base (its normal points from apex
to base); `cmr-ray synth --format acdc` writes ACDC's base -> apex file order with a
left-handed affine, so both paths give the same order.

Resampling (`to_store_frames`): the DICOM path does not resample to a fixed mm/pixel; it maps
the whole field of view onto the store's ``image_size`` with the aspect kept
(`cmr_ray.dicom.pixels.to_uint8`: percentile clip over the series, scale to 0..255, area/
bilinear resize, zero padding).  NIfTI pixels are first made square (`square_pixels`: the
coarser axis resampled bilinearly to the finer spacing; nothing happens when they already
are square, as in ACDC), then go through the same `to_uint8`.

Bad input gets one manifest line and the run goes on: no Info.cfg or one that does not parse
(study excluded), a missing or unknown group (stored unlabelled), a 3D file where the 4D
cine is expected, an unreadable or truncated ``.nii.gz``, a time dimension that disagrees
with ``NbFrame`` or an ED/ES outside it (study excluded).  Every file under ROOT has a row:
the cine and the metadata ``used``; ED/ES frame files and segmentations ``ignored`` (the
store takes the 4D cine); anything else ``ignored`` with why.

Splits: ACDC's ``training/`` -> train (a seeded ``val_fraction`` of it -> val), ``testing/``
-> test; M&Ms' Training -> train, Validation -> val, Testing -> test.  When the folders do
not give both a training and a test part, every patient is split by the seed
(``val_fraction``, ``test_fraction`` of the config).  The split is drawn over every patient
folder found (sorted names), so one bad patient does not move the others.

Writing: patients are decoded in a process pool (`num_cpus`), rows go to shards of at most
`SHARD_STUDIES` studies written under temporary names and renamed; the registry
(``studies.parquet``), ``manifest.parquet`` and ``store.json`` are written after every
shard is in place, and only then are the previous run's shards removed, so an interrupted
run leaves the previous store readable and nothing half-written.  A re-run rewrites the
whole store (150 patients decode in about a minute); its settings and salt must match.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cmr_ray.data import keys, storefs
from cmr_ray.data.index import list_input_files
from cmr_ray.data.manifest import MANIFEST_SCHEMA, STUDY_SCHEMA, file_row, read_rows, summary_text, write_table
from cmr_ray.data.schema import ACDC_CLASSES, SCHEMA_VERSION, arrow_schema, encode_view

SHARD_STUDIES = 32


class AcdcError(ValueError):
    """One line saying why a patient's file cannot be used."""


@dataclass(frozen=True)
class Layout:
    """What differs between the NIfTI cine sets this reader takes."""
    name: str
    patient_dir: str                 # regex a patient folder's name matches (fullmatch)
    image: str                       # the 4D cine's file name, {p} = folder name
    splits: dict                     # top-level folder (lower case) -> split
    meta: str                        # "info.cfg" (one per patient) or "csv" (one table)
    groups: dict                     # the set's group -> ACDC class (None: unlabelled)
    ignored: tuple = ()              # (file name regex, reason) for known files not used
    frames_base: int = 1             # ED/ES numbering: ACDC counts from 1, M&Ms from 0


LAYOUTS = {
    "acdc": Layout(
        "acdc", r"patient\d+", "{p}_4d.nii.gz", {"training": "train", "testing": "test"}, "info.cfg",
        {c: c for c in ACDC_CLASSES},
        ((r".+_frame\d+_gt\.nii(\.gz)?", "segmentation of an ED/ES frame (not used: the store takes the 4D cine)"),
         (r".+_frame\d+\.nii(\.gz)?", "ED/ES frame (not used: the store takes the 4D cine)"))),
    "mnms": Layout(
        "mnms", r"[A-Za-z0-9]{6}", "{p}_sa.nii.gz", {"training": "train", "validation": "val", "testing": "test"},
        "csv",
        # IHD (ischaemic heart disease) is the nearest to ACDC's MINF, ARV (abnormal right
        # ventricle) to RV; HHD, AHS, LVNC and Other have no ACDC class: stored unlabelled
        {"NOR": "NOR", "DCM": "DCM", "HCM": "HCM", "IHD": "MINF", "ARV": "RV",
         "HHD": None, "AHS": None, "LVNC": None, "OTHER": None},
        ((r".+_sa_gt\.nii(\.gz)?", "segmentation of the ED/ES frames (not used: the store takes the 4D cine)"),),
        frames_base=0),
}


@dataclass
class Meta:
    group: str | None = None         # as written (None: no group line / column)
    label: str | None = None         # ACDC class or None (unlabelled)
    label_note: str = ""             # why unlabelled
    ed: int | None = None
    es: int | None = None
    nbframe: int | None = None


@dataclass
class Patient:
    name: str                        # folder name (patient001, A0S9V9)
    folder: str                      # relpath of the folder
    split_group: str | None          # split its top-level folder gives, or None
    files: list = field(default_factory=list)
    image: str | None = None
    info: str | None = None          # relpath of Info.cfg (acdc)
    meta: Meta | None = None
    problem: str | None = None       # why the study is excluded before decoding
    problem_file: str | None = None  # the file the problem is about (its row says "failed")


# ---------------------------------------------------------------- metadata

_INTS, _FLOATS = ("ED", "ES", "NbFrame"), ("Height", "Weight")


def parse_info(text: str) -> dict:
    """Info.cfg -> {key: value} with ED/ES/NbFrame as int, Height/Weight as float; AcdcError
    (one line) when a line is not 'Key: value' or a number is not one."""
    out: dict = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise AcdcError(f"unparsable Info.cfg: line {n} {line.strip()[:40]!r} is not 'Key: value'")
        k, v = (s.strip() for s in line.split(":", 1))
        if not k:
            raise AcdcError(f"unparsable Info.cfg: line {n} has no key")
        try:
            if k in _INTS:
                f = float(v)
                if f != int(f):
                    raise ValueError
                v = int(f)
            elif k in _FLOATS:
                v = float(v)
        except ValueError:
            raise AcdcError(f"unparsable Info.cfg: {k}: {v[:20]!r} is not a {'whole ' if k in _INTS else ''}number") from None
        out[k] = v
    if not out:
        raise AcdcError("unparsable Info.cfg: empty")
    return out


def _label(layout: Layout, group) -> tuple[str | None, str]:
    if group is None or str(group).strip() == "":
        return None, "no group given: stored unlabelled, left out of probes"
    g = str(group).strip()
    key = g.upper() if layout.name == "mnms" else g
    if key in layout.groups:
        c = layout.groups[key]
        return c, "" if c else f"group {g!r} has no ACDC class: stored unlabelled, left out of probes"
    known = ", ".join(k for k in layout.groups)
    return None, f"unknown group {g!r} (known: {known}): stored unlabelled, left out of probes"


def meta_from_info(layout: Layout, info: dict) -> Meta:
    label, note = _label(layout, info.get("Group"))
    return Meta(info.get("Group"), label, note, info.get("ED"), info.get("ES"), info.get("NbFrame"))


def read_mnms_table(path: str) -> dict[str, Meta]:
    """M&Ms CSV -> {External code: Meta}; AcdcError when it lacks the code column."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or "External code" not in rows[0]:
        raise AcdcError(f"{os.path.basename(path)}: no 'External code' column (not the M&Ms table)")
    out = {}
    for r in rows:
        code = (r.get("External code") or "").strip()
        if not code:
            continue

        def num(k):
            v = (r.get(k) or "").strip()
            try:
                return int(float(v)) if v else None
            except ValueError:
                return None
        label, note = _label(LAYOUTS["mnms"], r.get("Pathology"))
        out[code] = Meta(r.get("Pathology"), label, note, num("ED"), num("ES"), None)
    return out


# ---------------------------------------------------------------- images

def orient(data: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    """NIfTI [x, y, slice, time] -> [S, T, rows, cols] as the DICOM path orders it (module
    docstring): rows from j, columns from i; slices reversed when the affine is left-handed;
    `affine` None (no qform/sform): file order."""
    vol = np.transpose(data, (2, 3, 1, 0))
    if affine is not None and np.linalg.det(np.asarray(affine, np.float64)[:3, :3]) < 0:
        vol = vol[::-1]
    return vol


def _linear(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] bilinear weights, pixel centres aligned (as cmr_ray.dicom.pixels)."""
    w = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for o in range(n_out):
        x = (o + 0.5) * scale - 0.5
        x0 = int(np.floor(x))
        f = x - x0
        for i, wt in ((x0, 1 - f), (x0 + 1, f)):
            w[o, min(max(i, 0), n_in - 1)] += wt
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def square_pixels(vol: np.ndarray, spacing: tuple) -> np.ndarray:
    """[..., H, W] with pixel spacing (between rows, between columns) mm -> square pixels at
    the finer spacing (bilinear along the coarser axis); unchanged when within 0.1 %."""
    dr, dc = (float(s) for s in spacing)
    if dr <= 0 or dc <= 0 or abs(dr - dc) <= 1e-3 * min(dr, dc):
        return vol
    H, W = vol.shape[-2:]
    fine = min(dr, dc)
    h, w = max(1, round(H * dr / fine)), max(1, round(W * dc / fine))
    return np.einsum("oh,...hw,pw->...op", _linear(H, h), vol.astype(np.float32), _linear(W, w), optimize=True)


def to_store_frames(vol: np.ndarray, image_size: int, percentiles=(1.0, 99.0), spacing=(1.0, 1.0)) -> np.ndarray:
    """Oriented float [S, T, H, W] -> the store's uint8 frames (the documented resampling)."""
    from cmr_ray.dicom.pixels import to_uint8

    return to_uint8(square_pixels(vol, spacing), image_size, percentiles)


def load_nifti(path: str):
    """(nibabel image, affine or None when the header carries no orientation)."""
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as e:
        raise AcdcError(f"unreadable NIfTI ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    h = img.header
    coded = int(h["qform_code"]) > 0 or int(h["sform_code"]) > 0
    return img, (np.asarray(img.affine) if coded else None)


def read_cine(path: str, nbframe: int | None = None) -> tuple[np.ndarray, tuple]:
    """A 4D cine -> (float32 [S, T, H, W] oriented, pixel spacing (rows, cols) mm); AcdcError
    (one line) for a 3D file, a time axis that disagrees with `nbframe`, unreadable data."""
    img, affine = load_nifti(path)
    shape = tuple(int(d) for d in img.shape)
    if len(shape) != 4:
        what = f"{len(shape)}D image {shape}"
        raise AcdcError(f"{what} where a 4D cine (x, y, slice, time) is expected")
    if nbframe is not None and shape[3] != nbframe:
        raise AcdcError(f"the cine has {shape[3]} frames, Info.cfg says NbFrame: {nbframe}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:
        raise AcdcError(f"unreadable NIfTI data, truncated or corrupt ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]})") from None
    if not np.all(np.isfinite(data)):
        raise AcdcError("the cine has non-finite intensities")
    zooms = img.header.get_zooms()
    return np.ascontiguousarray(orient(data, affine)), (float(zooms[1]), float(zooms[0]))


def decode_patient(args) -> tuple[str, bytes | None, list | None, str]:
    """Worker: (name, frames bytes, shape, reason) for one patient."""
    name, path, meta, image_size, percentiles, base = args
    try:
        vol, spacing = read_cine(path, meta.nbframe)
        T = vol.shape[1]
        for k in ("ed", "es"):
            v = getattr(meta, k)
            if v is not None and not base <= v < T + base:
                raise AcdcError(f"{k.upper()}: {v} is outside the cine's {T} frames")
        data, shape = encode_view(to_store_frames(vol, image_size, percentiles, spacing))
        return name, data, shape, ""
    except AcdcError as e:
        return name, None, None, str(e)
    except Exception as e:  # one patient, not the run
        return name, None, None, f"cannot read the cine ({type(e).__name__}: {' '.join(str(e).split())[:160]})"


# ---------------------------------------------------------------- layout

def find_patients(files: list, layout: Layout) -> tuple[list[Patient], dict]:
    """(patients by folder, {relpath: InputFile} of the files outside any patient folder).
    A patient folder is the innermost folder whose name matches the layout's pattern (for
    M&Ms, whose 6-character codes are less distinctive, it must also hold a '<code>_' file);
    its split group comes from the nearest folder above it named in `layout.splits`."""
    pat = re.compile(layout.patient_dir)
    owned = set()
    for f in files:
        parts = f.path.split("/")
        if len(parts) > 1 and parts[-1].startswith(parts[-2] + "_"):
            owned.add("/".join(parts[:-1]))
    patients: dict[str, Patient] = {}
    loose = {}
    for f in files:
        parts = f.path.split("/")
        folder = None
        for i in range(len(parts) - 2, -1, -1):
            rel = "/".join(parts[: i + 1])
            if pat.fullmatch(parts[i]) and (layout.name == "acdc" or rel in owned):
                folder = i
                break
        if folder is None:
            loose[f.path] = f
            continue
        rel = "/".join(parts[: folder + 1])
        if rel not in patients:
            group = next((layout.splits[parts[i].lower()] for i in range(folder - 1, -1, -1)
                          if parts[i].lower() in layout.splits), None)
            patients[rel] = Patient(parts[folder], rel, group)
        patients[rel].files.append(f.path)
    return sorted(patients.values(), key=lambda p: p.folder), loose


def assign_splits(patients: list[Patient], seed: int, val_fraction: float, test_fraction: float) -> dict:
    """{folder: split}: the layout's own split when it has a training and a test part (a seeded
    val_fraction of training -> val when it has no val part), else a seeded split of all."""
    groups = {p.split_group for p in patients}
    rng = np.random.default_rng(seed)
    out = {}
    if {"train", "test"} <= groups and None not in groups:
        train = sorted(p.folder for p in patients if p.split_group == "train")
        if "val" not in groups:
            n_val = int(round(len(train) * val_fraction))
            val = {train[i] for i in rng.permutation(len(train))[:n_val]}
        else:
            val = set()
        for p in patients:
            out[p.folder] = "val" if p.folder in val else p.split_group
        return out
    names = sorted(p.folder for p in patients)
    n_test, n_val = int(round(len(names) * test_fraction)), int(round(len(names) * val_fraction))
    order = rng.permutation(len(names))
    for rank, i in enumerate(order):
        out[names[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def _read_metadata(root: str, layout: Layout, patients: list[Patient], loose: dict, rows: dict) -> None:
    """Fill each patient's image, Info.cfg and Meta (or problem); manifest rows for the CSV."""
    table: dict | None = None
    if layout.meta == "csv":
        table = {}
        for rel in sorted(loose):
            if not rel.lower().endswith(".csv"):
                continue
            try:
                t = read_mnms_table(os.path.join(root, rel))
            except (AcdcError, OSError, UnicodeDecodeError, csv.Error) as e:
                rows[rel] = file_row(rel, "ignored", f"not the M&Ms information table ({e})")
                continue
            table.update(t)
            rows[rel] = file_row(rel, "used", f"M&Ms information table ({len(t)} subjects)")
    for p in patients:
        image = f"{p.folder}/{layout.image.format(p=p.name)}"
        p.image = image if image in p.files else None
        if layout.meta == "info.cfg":
            info = f"{p.folder}/Info.cfg"
            p.info = info if info in p.files else None
            if p.info is None:
                p.problem = f"no Info.cfg in {p.folder}/ (the group, ED/ES and NbFrame come from it)"
            else:
                try:
                    with open(os.path.join(root, p.info), "rb") as f:
                        text = f.read().decode("utf-8")
                    p.meta = meta_from_info(layout, parse_info(text))
                except UnicodeDecodeError:
                    p.problem, p.problem_file = "unparsable Info.cfg: not UTF-8 text", p.info
                except (AcdcError, OSError) as e:
                    p.problem, p.problem_file = str(e), p.info
        else:
            p.meta = table.get(p.name)
            if p.meta is None:
                p.problem = f"{p.name} is not in the M&Ms information table (*.csv under the root)"
        if p.problem is None and p.image is None:
            p.problem = f"no {layout.image.format(p=p.name)} in {p.folder}/"


# ---------------------------------------------------------------- the command

@dataclass
class Summary:
    store: str
    studies_used: int = 0
    studies_written: int = 0
    unlabelled: int = 0
    studies_excluded: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    input_files: int = 0
    splits: dict = field(default_factory=dict)
    seconds: float = 0.0
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.studies_used > 0


def _decoded(jobs: list, num_cpus: int):
    if num_cpus <= 1 or len(jobs) <= 1:
        yield from map(decode_patient, jobs)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(min(num_cpus, len(jobs)), mp_context=mp.get_context(method)) as ex:
        yield from ex.map(decode_patient, jobs, chunksize=1)


def prepare_nifti(src, out, fmt: str = "acdc", cfg=None, num_cpus: int | None = None, seed: int = 0,
                  progress: bool = True) -> Summary:
    """Read an ACDC or M&Ms folder into the store `out` (module docstring); returns a Summary."""
    from cmr_ray.config import load_config
    from cmr_ray.data.prepare import PrepareError, _check_bound, BOUND

    t0 = time.time()
    if fmt not in LAYOUTS:
        raise PrepareError(f"--format {fmt}: unknown (known: dicom, {', '.join(LAYOUTS)})")
    layout = LAYOUTS[fmt]
    problem = storefs.store_place_problem(out, src)
    if problem:
        raise PrepareError(problem)
    cfg = cfg or load_config()
    data = cfg["data"]
    root = os.path.abspath(src)
    fs, sroot = storefs.open_store(out)
    info_path = storefs.join(sroot, "store.json")
    if storefs.exists(fs, info_path):  # refused before anything is read or written
        old = json.loads(storefs.read_bytes(fs, info_path))
        if old.get("source", "dicom") != fmt:
            raise PrepareError(f"{out}: holds a store of format {old.get('source', 'dicom')}; write {fmt} to a new --out")
        try:
            salt_fp = keys.salt_fingerprint(keys.load_salt(fs, sroot, create=False))
        except ValueError as e:
            raise PrepareError(f"{out}: {e}") from None
        _check_bound(old, cfg, salt_fp, str(out))
    files = list_input_files(src)
    if not files:
        raise PrepareError(f"{src}: no files under it (empty folder); no store written")
    patients, loose = find_patients(files, layout)
    if not patients:
        raise PrepareError(f"{src}: no {fmt} patient folder under it (folders named like "
                           f"{layout.patient_dir!r} holding {layout.image.format(p='<name>')}); no store written")
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    say(f"{len(files)} files under {src}; {len(patients)} {fmt} patient folders")

    shard_dir = storefs.join(sroot, "shards")
    fs.create_dir(shard_dir, recursive=True)
    for d in (sroot, shard_dir):
        storefs.remove_temp_files(fs, d)
    salt = keys.load_salt(fs, sroot)

    rows: dict[str, dict] = {}
    for rel in loose:
        rows[rel] = file_row(rel, "ignored", f"not in an {fmt} patient folder")
    _read_metadata(root, layout, patients, loose, rows)
    seen: dict[str, str] = {}
    dup = set()
    for p in patients:  # the key is the folder name: a second copy of a patient is left out
        if p.name in seen:
            p.problem, p.problem_file = f"duplicate patient folder name (also at {seen[p.name]}/)", None
            dup.add(p.folder)
        seen.setdefault(p.name, p.folder)
    splits = assign_splits(patients, seed, data["val_fraction"], data["test_fraction"])
    ignored = [(re.compile(rx), why) for rx, why in layout.ignored]

    def other_rows(p: Patient, skey: str):
        for rel in p.files:
            if rel in (p.image, p.info) or rel == p.problem_file:
                continue
            base = rel.rsplit("/", 1)[-1]
            why = next((w for rx, w in ignored if rx.fullmatch(base)), f"not part of the {fmt} layout")
            rows[rel] = file_row(rel, "ignored", why, skey)

    registry, jobs, by_name = {}, [], {}
    stamp = {f.path: f for f in files}
    for p in patients:
        skey = keys.study_key(salt, f"{fmt}:{p.folder if p.folder in dup else p.name}")
        by_name[p.folder] = (p, skey)
        fp = keys.fingerprint([stamp[r].stamp for r in p.files])
        registry[skey] = dict(study_key=skey, fingerprint=fp, status="excluded", reason=p.problem, shard=None,
                              split=splits[p.folder], accession_key=None)
        other_rows(p, skey)
        if p.problem:
            for rel in (p.image, p.info):
                if rel:
                    rows[rel] = file_row(rel, "failed" if rel == p.problem_file else "ignored",
                                         p.problem if rel == p.problem_file else f"study excluded: {p.problem}", skey)
            continue
        if p.info:
            rows[p.info] = file_row(p.info, "used", p.meta.label_note, skey)
        jobs.append((p.folder, os.path.join(root, p.image), p.meta, data["image_size"],
                     tuple(data["clip_percentiles"]), layout.frames_base))

    schema = arrow_schema()
    written, batch = [], []

    def flush():
        nonlocal batch
        if not batch:
            return
        name = "part-" + fmt + "-" + keys.fingerprint(r["study_key"] for r in batch)[:16] + ".parquet"
        path = storefs.join(shard_dir, name)
        tmp = f"{path}{storefs.TMP_MARK}{uuid.uuid4().hex[:8]}"
        table = pa.Table.from_pylist(sorted(batch, key=lambda r: r["study_key"]), schema=schema)
        pq.write_table(table, tmp, filesystem=fs, row_group_size=1)
        written.append((tmp, path, [r["study_key"] for r in batch], name))
        batch = []

    done = 0
    try:
        for folder, frames, shape, reason in _decoded(jobs, num_cpus or 1):
            p, skey = by_name[folder]
            done += 1
            if frames is None:
                registry[skey].update(reason=reason)
                rows[p.image] = file_row(p.image, "failed", reason, skey, None, "cine", "sax")
                if p.info:
                    rows[p.info] = file_row(p.info, "ignored", f"study excluded: {reason}", skey)
            else:
                registry[skey].update(status="used", reason="")
                rows[p.image] = file_row(p.image, "used", "", skey, None, "cine", "sax")
                batch.append({"study_key": skey, "patient_key": keys.patient_key(salt, f"{fmt}:{p.name}"),
                              "split": splits[folder], "impression": "", "label_acdc": p.meta.label,
                              "cine_sax": frames, "cine_sax_shape": shape})
                if len(batch) >= SHARD_STUDIES:
                    flush()
            if progress and (done % 10 == 0 or done == len(jobs)):
                say(f"  {done}/{len(jobs)} patients decoded")
        flush()
        for tmp_, path, ks, name in written:  # every shard complete: move them into place
            fs.move(tmp_, path)
            for k in ks:
                registry[k]["shard"] = name
    except BaseException:
        for tmp_, *_ in written:
            if storefs.exists(fs, tmp_):
                fs.delete_file(tmp_)
        raise

    studies = sorted(registry.values(), key=lambda s: s["study_key"])
    manifest = []
    for f in files:
        r = rows[f.path]
        r["size"], r["mtime_ns"] = f.size, f.mtime_ns
        manifest.append(r)
    used = [s for s in studies if s["status"] == "used"]
    unlabelled = sum(1 for p, k in by_name.values() if registry[k]["status"] == "used" and p.meta.label is None)
    write_table(fs, storefs.join(sroot, "studies.parquet"), studies, STUDY_SCHEMA)
    write_table(fs, storefs.join(sroot, "manifest.parquet"), manifest, MANIFEST_SCHEMA)
    keep = {name for *_, name in written}
    for path in storefs.list_files(fs, shard_dir, ".parquet"):  # the previous run's shards
        if path.rsplit("/", 1)[-1] not in keep:
            fs.delete_file(path)
    split_counts = dict(Counter(s["split"] for s in used))
    info = {
        "schema_version": SCHEMA_VERSION, "image_size": data["image_size"], "source": fmt,
        "salt_fingerprint": keys.salt_fingerprint(salt), "settings": {k: data[k] for k in BOUND},
        "split_seed": seed,
        "counts": {"studies": len(used), "excluded": len(studies) - len(used), "splits": split_counts,
                   "unlabelled": unlabelled, "labels": dict(Counter(p.meta.label for p, k in by_name.values()
                                                                    if registry[k]["status"] == "used"
                                                                    and p.meta.label)),
                   "files": dict(Counter(r["status"] for r in manifest)), "shards": len(keep)},
    }
    storefs.write_bytes_atomic(fs, info_path, json.dumps(info, indent=2).encode())

    summary = Summary(store=str(out), studies_used=len(used), studies_written=len(used), unlabelled=unlabelled,
                      studies_excluded=dict(Counter(s["reason"] for s in studies if s["status"] != "used")),
                      files=dict(Counter(r["status"] for r in manifest)), input_files=len(files),
                      splits=split_counts, seconds=time.time() - t0)
    split_text = ", ".join(f"{k} {split_counts[k]}" for k in ("train", "val", "test") if k in split_counts)
    summary.text = summary_text(manifest, studies) + (
        f"\n{len(used)} {fmt} studies in the store ({split_text}"
        + (f"; {unlabelled} unlabelled: stored, left out of probes" if unlabelled else "")
        + f"), {summary.seconds:.1f} s -> {out}")
    return summary
