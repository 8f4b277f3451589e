"""`cmr-ray synth --format acdc` -> `cmr-ray prepare --format acdc`: the stand-in goes through
the reader a real download goes through; its frames match the DICOM path's for the same patient."""
from __future__ import annotations

import glob
import json

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from cmr_ray.cli import main
from cmr_ray.data import keys, storefs
from cmr_ray.data.reader import load_split


def test_synth_acdc_then_prepare(tmp_path):
    out, store = tmp_path / "acdc", tmp_path / "store"
    args = ["synth", "--format", "acdc", str(out), "--studies", "3", "--workers", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "3 patients in ACDC layout (training 2, testing 1" in res.output
    groups = {}
    for cfg in sorted(out.glob("*/patient*/Info.cfg")):
        lines = dict(line.split(": ", 1) for line in cfg.read_text().splitlines())
        assert set(lines) == {"ED", "ES", "Group", "Height", "NbFrame", "Weight"}
        groups[cfg.parent.name] = lines["Group"]
    assert sorted(p.parent.name for p in out.glob("testing/*/Info.cfg")) == ["patient003"]
    labels = json.loads((out / "acdc.json").read_text())["groups"]
    assert sum(labels.values()) == 3
    again = CliRunner().invoke(main, args)  # same arguments: a no-op
    assert again.exit_code == 0 and "already holds" in again.output

    res = CliRunner().invoke(main, ["prepare", str(out), "--format", "acdc", "--out", str(store),
                                    "--image-size", "32", "--num-cpus", "1"])
    assert res.exit_code == 0, res.output
    assert "3 acdc studies in the store (train 2, test 1)" in res.output
    fs, root = storefs.open_store(store)
    salt = keys.load_salt(fs, root, create=False)
    rows = {r["study_key"]: r for r in load_split(store, ["cine_sax"])}
    for name, group in groups.items():
        row = rows[keys.study_key(salt, f"acdc:{name}")]
        assert row["label_acdc"] == group
        assert row["cine_sax_shape"] == [10, 12, 32, 32]  # small protocol: 10 slices x 12 phases
    statuses = {r["status"] for r in pq.read_table(store / "manifest.parquet").to_pylist()}
    assert statuses == {"used", "ignored"}  # ED/ES frames and acdc.json: ignored; nothing failed
    res = CliRunner().invoke(main, ["prepare", str(out), "--format", "acdc", "--out", str(tmp_path / "s2"),
                                    "--reports", str(out / "acdc.json")])
    assert res.exit_code != 0 and "not used with --format acdc" in res.output


def test_same_patient_same_frames_as_the_dicom_path(tmp_path):
    """Study 0 through DICOM (generate_study -> plan -> decode) and through ACDC's layout
    (acdc_patient -> read_cine -> to_store_frames): the same slices in the same order and
    orientation (only the noise draw differs); any flip or reversal matches far worse."""
    from cmr_ray.config import load_config
    from cmr_ray.data.acdc import read_cine, to_store_frames
    from cmr_ray.data.index import index_local, list_input_files
    from cmr_ray.data.plan import group_index, plan_studies, study_accession
    from cmr_ray.data.prepare import decode_study
    from cmr_ray.synth import generate_study
    from cmr_ray.synth.acdc import acdc_patient

    generate_study(0, 0, "small", tmp_path / "dicom")
    acdc_patient(0, 0, "small", tmp_path / "acdc", 1)
    rows = index_local(tmp_path / "dicom", list_input_files(tmp_path / "dicom"))
    reports = {study_accession(r): ["Impression: normal."] for r in group_index(rows)[0].values()}
    plan = plan_studies(rows, reports, {}, "salt", load_config(None, {"data.image_size": 48}))
    row, failures = decode_study(plan.studies[0], 48, (1, 99))
    assert not failures
    dicom = np.frombuffer(row["cine_sax"], np.uint8).reshape(row["cine_sax_shape"]).astype(float)
    vol, spacing = read_cine(glob.glob(str(tmp_path / "acdc/*/patient001/patient001_4d.nii.gz"))[0])
    acdc = to_store_frames(vol, 48, (1, 99), spacing).astype(float)
    assert acdc.shape == dicom.shape

    def corr(a):
        return np.corrcoef(a.ravel(), dicom.ravel())[0, 1]

    same = corr(acdc)
    assert same > 0.97
    for other in (acdc[::-1], acdc[..., ::-1, :], acdc[..., ::-1], np.swapaxes(acdc, 2, 3)):
        assert corr(other) < same - 0.2
