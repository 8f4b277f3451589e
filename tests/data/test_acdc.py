"""ACDC / M&Ms NIfTI layout -> clip store (`cmr_ray.data.acdc`), no Ray: tiny volumes written
by the test, read back voxel by voxel, bad inputs each with their manifest reason."""
from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest

from cmr_ray.config import load_config
from cmr_ray.data import keys, storefs
from cmr_ray.data.acdc import AcdcError, parse_info, prepare_nifti, read_cine, to_store_frames
from cmr_ray.data.reader import load_split
from cmr_ray.dicom.pixels import to_uint8
from cmr_ray.synth.acdc import write_acdc_patient, write_nifti

X, Y, S, T = 16, 12, 3, 4
SIZE = 16  # = max(X, Y): with square pixels the resize is the identity (rows padded by 2 top, 2 bottom)
RIGHT = np.diag([1.5, 1.5, 8.0, 1.0])              # right-handed: slices in file order
LEFT = np.diag([-1.5, 1.5, 8.0, 1.0])              # left-handed: slices read from the last one


def cfg(**over):
    return load_config(None, {"data.image_size": SIZE, **over})


def volume(seed):
    return np.random.default_rng(seed).integers(0, 400, size=(X, Y, S, T)).astype(np.int16)


def info(group="NOR", nb=T, **extra):
    d = {"ED": 1, "ES": 3, "Group": group, "Height": 170.0, "NbFrame": nb, "Weight": 70.0, **extra}
    return {k: v for k, v in d.items() if v is not None}


def patient(root, where, n, group="NOR", affine=RIGHT, frame_files=True, **kw):
    name = f"patient{n:03d}"
    data = volume(n)
    write_acdc_patient(root / where / name, name, data, affine, info(group, **kw), frame_files=frame_files)
    return name, data


def salt_of(store):
    fs, root = storefs.open_store(store)
    return keys.load_salt(fs, root, create=False)


def by_patient(store, fmt="acdc"):
    salt = salt_of(store)
    rows = {r["study_key"]: r for r in load_split(store, ["cine_sax"])}
    return salt, rows, lambda name: rows.get(keys.study_key(salt, f"{fmt}:{name}"))


def manifest(store):
    return {r["path"]: r for r in pq.read_table(store / "manifest.parquet").to_pylist()}


def frames(row):
    return np.frombuffer(row["cine_sax"], np.uint8).reshape(row["cine_sax_shape"])


@pytest.fixture
def acdc(tmp_path):
    root = tmp_path / "ACDC" / "database"
    made = {}
    for n, (where, group) in enumerate([("training", "NOR"), ("training", "MINF"), ("training", "DCM"),
                                        ("training", "HCM"), ("training", "RV"), ("testing", "DCM"),
                                        ("testing", "NOR")], start=1):
        made[n] = patient(root, where, n, group)
    (root / "training" / "patient001" / "patient001_frame01_gt.nii.gz").write_bytes(b"not read")
    (tmp_path / "ACDC" / "README.txt").write_text("the download's own notes")
    return tmp_path / "ACDC", made


def test_one_patient_voxel_by_voxel_then_store(acdc, tmp_path):
    src, made = acdc
    name, data = made[1]
    vol, spacing = read_cine(str(src / "database/training/patient001/patient001_4d.nii.gz"))
    assert vol.shape == (S, T, Y, X) and spacing == (1.5, 1.5)
    for k in range(S):  # the documented mapping: frame[r, c] = data[c, r], right-handed: k in order
        for t in range(T):
            for r in range(Y):
                for c in range(X):
                    assert vol[k, t, r, c] == data[c, r, k, t]
    s = prepare_nifti(src, tmp_path / "store", cfg=cfg(), progress=False)
    assert s.ok and s.studies_used == 7 and s.unlabelled == 0
    _, rows, row_of = by_patient(tmp_path / "store")
    got = frames(row_of(name))
    assert got.shape == (S, T, SIZE, SIZE)
    # the resampling: percentile clip over the series, 0..255, rows padded (16 - 12) / 2 = 2 each side
    want = to_uint8(data.transpose(2, 3, 1, 0).astype(np.float32), SIZE, (1.0, 99.0))
    assert np.array_equal(got, want)
    lo, hi = np.percentile(data.astype(np.float32), [1, 99])
    scaled = np.clip(np.rint((np.clip(data, lo, hi) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    assert np.array_equal(got[:, :, 2:2 + Y, :], scaled.transpose(2, 3, 1, 0))
    assert not got[:, :, :2].any() and not got[:, :, -2:].any()


def test_groups_splits_manifest(acdc, tmp_path):
    src, made = acdc
    store = tmp_path / "store"
    prepare_nifti(src, store, cfg=cfg(**{"data.val_fraction": 0.2}), progress=False, seed=3)
    _, rows, row_of = by_patient(store)
    groups = {1: "NOR", 2: "MINF", 3: "DCM", 4: "HCM", 5: "RV", 6: "DCM", 7: "NOR"}
    assert {n: row_of(made[n][0])["label_acdc"] for n in groups} == groups
    splits = {n: row_of(made[n][0])["split"] for n in groups}
    assert splits[6] == splits[7] == "test"
    assert sorted(splits[n] for n in range(1, 6)) == ["train"] * 4 + ["val"]  # round(5 x 0.2) = 1
    assert all(r["impression"] == "" and r["label_nicm"] is None for r in rows.values())
    m = manifest(store)
    assert m["database/training/patient001/patient001_4d.nii.gz"]["status"] == "used"
    assert m["database/training/patient001/Info.cfg"]["status"] == "used"
    assert m["database/training/patient001/patient001_frame01.nii.gz"]["reason"].startswith("ED/ES frame")
    assert m["database/training/patient001/patient001_frame01_gt.nii.gz"]["reason"].startswith("segmentation")
    assert m["README.txt"] == {**m["README.txt"], "status": "ignored", "reason": "not in an acdc patient folder"}
    info = json.loads((store / "store.json").read_text())
    assert info["source"] == "acdc" and info["counts"]["studies"] == 7
    assert info["counts"]["labels"] == {"NOR": 2, "MINF": 1, "DCM": 2, "HCM": 1, "RV": 1}
    # same seed: same split; a re-run rewrites the store in place (one set of shards)
    prepare_nifti(src, store, cfg=cfg(**{"data.val_fraction": 0.2}), progress=False, seed=3)
    assert {n: by_patient(store)[2](made[n][0])["split"] for n in groups} == splits
    assert len(list((store / "shards").iterdir())) == 1


def test_orientation_handedness_no_header_and_anisotropic_pixels(tmp_path):
    root = tmp_path / "acdc"
    _, left = patient(root, "training", 1, affine=LEFT)
    _, right = patient(root, "testing", 2)
    # no qform / sform (codes 0): file order, whatever nibabel's default affine says
    bare = volume(3)
    (root / "training" / "patient003").mkdir(parents=True)
    img = nib.Nifti1Image(bare, LEFT)
    img.set_qform(LEFT, code=0)
    img.set_sform(LEFT, code=0)
    nib.save(img, root / "training/patient003/patient003_4d.nii.gz")
    (root / "training/patient003/Info.cfg").write_text("ED: 1\nES: 2\nGroup: RV\nNbFrame: 4\n")
    # pixel spacing 1 mm between columns (x), 2 mm between rows (y): rows resampled to 1 mm
    _, aniso = patient(root, "training", 4, affine=np.diag([1.0, 2.0, 8.0, 1.0]))
    vol, spacing = read_cine(str(root / "training/patient001/patient001_4d.nii.gz"))
    assert np.array_equal(vol, left.transpose(2, 3, 1, 0)[::-1])
    vol, _ = read_cine(str(root / "training/patient003/patient003_4d.nii.gz"))
    assert np.array_equal(vol, bare.transpose(2, 3, 1, 0))
    vol, spacing = read_cine(str(root / "training/patient004/patient004_4d.nii.gz"))
    assert spacing == (2.0, 1.0)
    size = 2 * Y  # rows 12 x 2 mm -> 24 x 1 mm
    prepare_nifti(root, tmp_path / "store", cfg=cfg(**{"data.image_size": size}), progress=False)
    _, _, row_of = by_patient(tmp_path / "store")
    want = to_store_frames(vol, size, (1.0, 99.0), spacing)
    assert np.array_equal(frames(row_of("patient004")), want)
    # the aspect is kept: 24 rows x 16 columns, so columns are padded, rows are not
    got = frames(row_of("patient004"))
    assert got[:, :, :, :4].max() == 0 and got[:, :, :, -4:].max() == 0 and got[:, :, :, 4:20].any()
    assert np.array_equal(frames(row_of("patient001")), to_store_frames(left.transpose(2, 3, 1, 0)[::-1].astype(np.float32), size))


def test_bad_inputs_each_get_their_reason_and_the_rest_is_stored(tmp_path):
    root = tmp_path / "acdc"
    good = [patient(root, "training", n, g)[0] for n, g in ((1, "NOR"), (2, "DCM"))] + [patient(root, "testing", 3, "RV")[0]]
    # 4: no Info.cfg
    patient(root, "training", 4)
    (root / "training/patient004/Info.cfg").unlink()
    # 5: unparsable Info.cfg
    patient(root, "training", 5)
    (root / "training/patient005/Info.cfg").write_text("ED: 1\nthis is not a key value line\n")
    # 6: no Group line (some testing releases): stored, unlabelled
    patient(root, "testing", 6, group=None)
    # 7: unknown group: stored, unlabelled
    patient(root, "training", 7, group="XYZ")
    # 8: a 3D file where the 4D cine is expected
    patient(root, "training", 8)
    write_nifti(root / "training/patient008/patient008_4d.nii.gz", volume(8)[..., 0], RIGHT)
    # 9: truncated .nii.gz
    patient(root, "training", 9)
    p9 = root / "training/patient009/patient009_4d.nii.gz"
    p9.write_bytes(p9.read_bytes()[: len(p9.read_bytes()) // 2])
    # 10: frame count disagrees with NbFrame
    patient(root, "training", 10, nb=30)
    # 11: ES outside the cine
    patient(root, "training", 11, ES=9, frame_files=False)
    # 12: Info.cfg with a number that is not one
    patient(root, "training", 12)
    (root / "training/patient012/Info.cfg").write_text("ED: 1\nES: 3\nGroup: NOR\nNbFrame: four\n")
    # 13: no 4D file at all
    patient(root, "training", 13)
    (root / "training/patient013/patient013_4d.nii.gz").unlink()
    store = tmp_path / "store"
    s = prepare_nifti(root, store, cfg=cfg(), progress=False)
    _, rows, row_of = by_patient(store)
    for name in good:
        assert row_of(name) is not None
    assert row_of("patient006")["label_acdc"] is None and row_of("patient007")["label_acdc"] is None
    assert s.studies_used == 5 and s.unlabelled == 2
    assert json.loads((store / "store.json").read_text())["counts"]["unlabelled"] == 2
    assert "2 unlabelled: stored, left out of probes" in s.text
    m = manifest(store)

    def row(p):
        return m[p]

    assert row("training/patient004/patient004_4d.nii.gz")["reason"] == \
        "study excluded: no Info.cfg in training/patient004/ (the group, ED/ES and NbFrame come from it)"
    r5 = row("training/patient005/Info.cfg")
    assert (r5["status"], r5["reason"]) == ("failed", "unparsable Info.cfg: line 2 'this is not a key value line' is not 'Key: value'")
    assert row("testing/patient006/Info.cfg")["reason"] == "no group given: stored unlabelled, left out of probes"
    assert row("training/patient007/Info.cfg")["reason"].startswith("unknown group 'XYZ' (known: NOR, MINF, DCM, HCM, RV)")
    assert row("training/patient008/patient008_4d.nii.gz")["reason"] == \
        f"3D image ({X}, {Y}, {S}) where a 4D cine (x, y, slice, time) is expected"
    r9 = row("training/patient009/patient009_4d.nii.gz")
    assert r9["status"] == "failed" and r9["reason"].startswith("unreadable NIfTI")
    assert row("training/patient010/patient010_4d.nii.gz")["reason"] == "the cine has 4 frames, Info.cfg says NbFrame: 30"
    assert row("training/patient011/patient011_4d.nii.gz")["reason"] == "ES: 9 is outside the cine's 4 frames"
    assert row("training/patient012/Info.cfg")["reason"] == "unparsable Info.cfg: NbFrame: 'four' is not a whole number"
    assert row("training/patient013/Info.cfg")["reason"] == "study excluded: no patient013_4d.nii.gz in training/patient013/"
    for n in (8, 9, 10, 11):  # the failed cine's Info.cfg says why it is not used either
        assert row(f"training/patient{n:03d}/Info.cfg")["reason"].startswith("study excluded: ")
    reg = {r["study_key"]: r for r in pq.read_table(store / "studies.parquet").to_pylist()}
    salt = salt_of(store)
    for n in (4, 5, 8, 9, 10, 11, 12, 13):
        r = reg[keys.study_key(salt, f"acdc:patient{n:03d}")]
        assert r["status"] == "excluded" and r["reason"] and r["shard"] is None
    assert set(m) == {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}  # every file has a row
    assert not [p for p in store.rglob("*") if storefs.TMP_MARK in p.name]  # nothing half-written


def test_single_folder_gets_a_seeded_split(tmp_path):
    root = tmp_path / "flat"
    names = [patient(root, ".", n)[0] for n in range(1, 9)]
    c = cfg(**{"data.val_fraction": 0.25, "data.test_fraction": 0.25})
    prepare_nifti(root, tmp_path / "a", cfg=c, seed=1, progress=False)
    prepare_nifti(root, tmp_path / "b", cfg=c, seed=1, progress=False)
    prepare_nifti(root, tmp_path / "c", cfg=c, seed=2, progress=False)
    split = {s: {n: by_patient(tmp_path / s)[2](n)["split"] for n in names} for s in "abc"}
    assert sorted(split["a"].values()) == ["test"] * 2 + ["train"] * 4 + ["val"] * 2
    assert split["a"] == split["b"] and split["a"] != split["c"]


def test_parse_info_and_store_refusals(tmp_path):
    assert parse_info("ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n") == \
        {"ED": 1, "ES": 12, "Group": "DCM", "Height": 184.0, "NbFrame": 30, "Weight": 95.0}
    with pytest.raises(AcdcError, match="empty"):
        parse_info("\n\n")
    from cmr_ray.data.prepare import PrepareError

    root = tmp_path / "acdc"
    patient(root, "training", 1)
    prepare_nifti(root, tmp_path / "store", cfg=cfg(), progress=False)
    with pytest.raises(PrepareError, match="data.image_size"):
        prepare_nifti(root, tmp_path / "store", cfg=cfg(**{"data.image_size": 32}), progress=False)
    with pytest.raises(PrepareError, match="holds a store of format acdc"):
        prepare_nifti(root, tmp_path / "store", fmt="mnms", cfg=cfg(), progress=False)
    with pytest.raises(PrepareError, match="no acdc patient folder"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "x.txt").write_text("x")
        prepare_nifti(tmp_path / "empty", tmp_path / "s2", cfg=cfg(), progress=False)


def test_mnms_layout(tmp_path):
    root = tmp_path / "MnM"
    table = [("A1B2C3", "Training/Labeled", "NOR"), ("D4E5F6", "Training/Labeled", "IHD"),
             ("G7H8I9", "Training/Unlabeled", "HHD"), ("J1K2L3", "Validation", "ARV"), ("M4N5O6", "Testing", "DCM")]
    for n, (code, where, _) in enumerate(table):
        d = root / where / code
        d.mkdir(parents=True)
        write_nifti(d / f"{code}_sa.nii.gz", volume(n), RIGHT)
        (d / f"{code}_sa_gt.nii.gz").write_bytes(gzip.compress(b"segmentation"))
    with open(root / "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv", "w") as f:
        f.write(",External code,VendorName,Vendor,Centre,ED,ES,Age,Pathology,Sex,Height,Weight\n")
        for i, (code, _, group) in enumerate(table):
            f.write(f"{i},{code},Siemens,A,1,0,2,50,{group},M,170,70\n")
    s = prepare_nifti(root, tmp_path / "store", fmt="mnms", cfg=cfg(), progress=False)
    assert s.studies_used == 5 and s.unlabelled == 1
    _, _, row_of = by_patient(tmp_path / "store", "mnms")
    got = {code: (row_of(code)["label_acdc"], row_of(code)["split"]) for code, _, _ in table}
    assert got == {"A1B2C3": ("NOR", "train"), "D4E5F6": ("MINF", "train"), "G7H8I9": (None, "train"),
                   "J1K2L3": ("RV", "val"), "M4N5O6": ("DCM", "test")}
    m = manifest(tmp_path / "store")
    assert m["211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"]["status"] == "used"
    assert m["Training/Labeled/A1B2C3/A1B2C3_sa_gt.nii.gz"]["reason"].startswith("segmentation")
