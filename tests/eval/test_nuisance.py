"""Read-outs of the synthetic cohort's draws from embeddings (cmr_ray/eval/nuisance.py)."""
from types import SimpleNamespace

import numpy as np
import pytest

from cmr_ray.data import storefs
from cmr_ray.data.manifest import MANIFEST_SCHEMA, file_row, write_table
from cmr_ray.eval.nuisance import (PARAMETERS, check_labels, cohort_parameters, patient_parameters, readouts,
                                   study_indices)
from cmr_ray.synth.patients import LABELS, sample_patient


def write_manifest(path, rows) -> str:
    path.mkdir(parents=True, exist_ok=True)
    fs, root = storefs.open_store(str(path))
    write_table(fs, storefs.join(root, "manifest.parquet"), rows, MANIFEST_SCHEMA)
    return str(path)


def cohort_manifest(n: int):
    rows = []
    for i in range(n):
        key = f"s{i:03d}"
        rows.append(file_row(f"{i + 10:05d}/SE0001/0001.dcm", "ignored", "localizer", study_key=key))
        rows += [file_row(f"{i + 10:05d}/SE000{s}/0001.dcm", "used", study_key=key) for s in (2, 3)]
    return rows


def test_each_stored_study_maps_to_the_cohort_index_of_its_files(tmp_path):
    rows = cohort_manifest(3) + [
        file_row("elsewhere/x.dcm", "used", study_key="s999"),  # not a cohort path: no index
        file_row("00077/SE0001/0001.dcm", "failed", "unreadable", study_key="s998"),  # never stored
    ]
    assert study_indices(write_manifest(tmp_path / "a", rows)) == {"s000": 10, "s001": 11, "s002": 12}
    two = cohort_manifest(1) + [file_row("00099/SE0002/0001.dcm", "used", study_key="s000")]
    with pytest.raises(ValueError, match=r"s000 has files under two cohort indices \(10 and 99\)"):
        study_indices(write_manifest(tmp_path / "b", two))
    store = write_manifest(tmp_path / "c", [file_row("scan/a.dcm", "used", study_key="k")])
    with pytest.raises(ValueError, match="not prepared from a synthetic cohort") as e:
        study_indices(store)
    assert store in str(e.value)


def test_the_parameters_are_the_draws_of_the_cohort_seed_and_a_wrong_seed_is_caught(tmp_path):
    store = write_manifest(tmp_path / "s", cohort_manifest(12))
    params = cohort_parameters(store, seed=4)
    assert params["s003"] == patient_parameters(sample_patient(4, 13))
    assert set(params["s003"]) == set(PARAMETERS)
    keys = sorted(params)
    assert params["s003"]["acdc"] == LABELS[params["s003"]["pathology"]][4]
    acdc = [params[k]["acdc"] for k in keys]
    check_labels(params, keys, acdc)  # the store's labels are the draws': passes
    check_labels(params, keys, [None] * len(keys))  # unknown labels check nothing
    other = cohort_parameters(store, seed=5)
    with pytest.raises(ValueError, match="data.synth_seed"):
        check_labels(other, keys, acdc)
    with pytest.raises(ValueError, match="no cohort index in the manifest"):
        check_labels(params, keys + ["s404"], acdc + ["NOR"])


def test_readouts_find_what_an_embedding_encodes_and_nothing_else():
    rng = np.random.default_rng(0)
    vendors = np.array(["GE", "Siemens", "Philips", "UKB"])

    def split(n, start):
        keys = [f"k{start + i}" for i in range(n)]
        p = {k: {name: float(rng.normal()) for name, (_, how) in PARAMETERS.items() if how == "number"} for k in keys}
        for k in keys:
            p[k]["vendor"] = str(rng.choice(vendors))
            p[k]["pathology"] = str(rng.choice(["normal", "dcm"]))
            p[k]["acdc"] = str(rng.choice(["NOR", "DCM", "HCM"]))
        video = rng.normal(size=(n, 8)) * 0.1  # encodes fov_mm in column 0 and the vendor in columns 1-4
        video[:, 0] += [p[k]["fov_mm"] for k in keys]
        video[np.arange(n), 1 + np.searchsorted(np.sort(vendors), [p[k]["vendor"] for k in keys])] += 1.0
        return SimpleNamespace(video=video, study_keys=keys), p

    fit, p_fit = split(300, 0)
    test, p_test = split(200, 1000)
    got = {r.name: r for r in readouts(fit, test, {**p_fit, **p_test})}
    assert set(got) == set(PARAMETERS)
    assert got["fov_mm"].metric == "R2" and got["fov_mm"].score > 0.95 and got["fov_mm"].chance == 0
    assert got["noise"].score < 0.1  # drawn independently of the embedding
    assert got["vendor"].metric == "acc" and got["vendor"].score > 0.95 and got["vendor"].chance < 0.4
    assert got["pathology"].score < got["pathology"].chance + 0.1  # not in the embedding: at most chance
    assert got["acdc"].score < got["acdc"].chance + 0.1
    assert got["mr"].metric == "R2" and got["mr"].kind == "anatomy" and got["mr"].score < 0.1
    assert got["fov_mm"].n_test == 200 and got["fov_mm"].kind == "nuisance" and got["wall_mm"].kind == "anatomy"


def test_readout_metrics_on_the_cohorts_store_and_a_note_elsewhere(tmp_path):
    from cmr_ray.eval.nuisance import readout_metrics

    store = write_manifest(tmp_path / "s", cohort_manifest(40))
    params = cohort_parameters(store, seed=2)
    keys = sorted(params)
    rng = np.random.default_rng(0)

    def emb(ks):
        video = rng.normal(size=(len(ks), 6)) * 0.01
        video[:, 0] += [params[k]["wall_mm"] for k in ks]  # the wall thickness, and nothing else
        return SimpleNamespace(video=video, study_keys=ks, labels={"acdc": np.array([params[k]["acdc"] for k in ks],
                                                                                  dtype=object)})

    fit, test = emb(keys[:28]), emb(keys[28:])
    m, notes = readout_metrics(store, 2, fit, test)
    assert notes == []
    assert set(m) == {f"readout/{n}" for n in PARAMETERS} | {"readout/vendor_majority", "readout/pathology_majority",
                                                            "readout/acdc_majority"}
    assert m["readout/wall_mm"] > 0.5 > m["readout/fov_mm"]
    m, notes = readout_metrics(store, 3, fit, test)  # the labels are seed 2's draws, not seed 3's
    assert m == {} and len(notes) == 1 and "data.synth_seed" in notes[0] and notes[0].count(store) == 1
    elsewhere = str(tmp_path / "real")                 # a store of real DICOM: no cohort indices
    write_manifest(tmp_path / "real", [file_row("scan/a.dcm", "used", study_key="k")])
    m, notes = readout_metrics(elsewhere, 2, fit, test)
    assert m == {} and notes[0].startswith("read-outs of the cohort's draws left out: ") and elsewhere in notes[0]
