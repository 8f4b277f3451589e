"""`cmr-ray inspect`, `show` (no Ray) and `prepare` (local Ray) through the click CLI."""
from __future__ import annotations

import csv

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cmr_ray.cli import main

from .helpers import write_reports, write_study


@pytest.fixture
def dicom(tmp_path):
    phis = [write_study(tmp_path / "dicom", i, views=(("cine", "sax"), ("cine", "4ch"), ("lge", "sax")))
            for i in range(2)]
    write_reports(tmp_path / "reports.csv", phis)
    return tmp_path / "dicom"


def test_inspect_prints_and_writes_table(dicom, tmp_path):
    res = CliRunner().invoke(main, ["inspect", str(dicom), "--out", str(tmp_path / "s.csv")])
    assert res.exit_code == 0, res.output
    assert "cine_sax" in res.output and "lge" in res.output
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 6
    assert {(r["sequence"], r["view"]) for r in rows} == {("cine", "sax"), ("cine", "4ch"), ("lge", "sax")}
    assert not any("1.2.826.0.9" in r["study"] for r in rows)  # hashed key, not the UID
    res = CliRunner().invoke(main, ["inspect", str(dicom), "--out", str(tmp_path / "s.parquet")])
    assert res.exit_code == 0 and pq.read_table(tmp_path / "s.parquet").num_rows == 6
    res = CliRunner().invoke(main, ["inspect", str(dicom), "--out", str(tmp_path / "s.xlsx")])
    assert res.exit_code != 0 and "expected a .csv or .parquet" in res.output


def test_show_writes_png(dicom, tmp_path):
    out = tmp_path / "study.png"
    res = CliRunner().invoke(main, ["show", str(dicom / "study000"), "--out", str(out), "--image-size", "32"])
    assert res.exit_code == 0, res.output
    assert "3 series" in res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.txt").write_text("nothing")
    res = CliRunner().invoke(main, ["show", str(empty), "--out", str(tmp_path / "e.png")])
    assert res.exit_code != 0 and "no cine or LGE series" in res.output


@pytest.mark.integration
def test_prepare_command(dicom, tmp_path):
    store = tmp_path / "store"
    args = ["prepare", str(dicom), "--reports", str(tmp_path / "reports.csv"), "--out", str(store),
            "--image-size", "16", "--num-cpus", "2"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "2 studies written this run" in res.output
    assert (store / "store.json").exists() and (store / "manifest.parquet").exists()
    (tmp_path / "none.csv").write_text("accession_number,report_text\n")
    args[args.index(str(tmp_path / "reports.csv"))] = str(tmp_path / "none.csv")
    args[args.index(str(store))] = str(tmp_path / "store2")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "no usable study" in res.output, res.output
    # issue 16 (5): progress and summary count the same studies
    assert "studies planned and decoded: 2/2" in res.output
    assert "0 studies written this run (2 of the 2 planned excluded" in res.output, res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {views: 'cine:5ch'}\n")
    res = CliRunner().invoke(main, args + ["--config", str(bad)])
    assert res.exit_code != 0 and "data.views" in res.output and "bad.yaml" in res.output, res.output


# ---------------------------------------------------------------- issue 16 (3-5): refused early, said plainly

def _one_line_error(res) -> str:
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def _no_ray(monkeypatch):
    import cmr_ray.runtime

    def refuse(*a, **k):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(cmr_ray.runtime, "init_ray", refuse)


def _prepare(dicom, tmp_path, out, *more):
    return CliRunner().invoke(main, ["prepare", str(dicom), "--reports", str(tmp_path / "reports.csv"),
                                     "--out", str(out), *more])


def test_prepare_refuses_num_cpus_0_before_ray(dicom, tmp_path, monkeypatch):
    _no_ray(monkeypatch)
    for n in ("0", "-2"):
        line = _one_line_error(_prepare(dicom, tmp_path, tmp_path / "store", "--num-cpus", n))
        assert f"--num-cpus {n}" in line and "at least 1" in line
    assert not (tmp_path / "store").exists()


def test_prepare_library_refuses_num_cpus_0(dicom, tmp_path, monkeypatch):
    from cmr_ray.data.prepare import PrepareError, prepare

    _no_ray(monkeypatch)
    with pytest.raises(PrepareError, match="--num-cpus 0"):
        prepare(dicom, tmp_path / "reports.csv", tmp_path / "store", num_cpus=0, progress=False)
    assert not (tmp_path / "store").exists()


def test_prepare_refuses_bad_output_places(dicom, tmp_path, monkeypatch):
    _no_ray(monkeypatch)
    existing = tmp_path / "a_file"
    existing.write_text("x")
    assert "is an existing file" in _one_line_error(_prepare(dicom, tmp_path, existing))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    line = _one_line_error(_prepare(dicom, tmp_path, busy))
    assert "non-empty folder that is not a store" in line and "notes.txt" in line
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    assert "is inside DICOM_DIR" in _one_line_error(_prepare(dicom, tmp_path, dicom / "store"))
    assert "is DICOM_DIR" in _one_line_error(_prepare(dicom, tmp_path, dicom))
    assert not (dicom / "store").exists() and not (dicom / "store.json").exists()


def test_store_place_accepts_new_empty_and_store_folders(tmp_path):
    from cmr_ray.data.storefs import store_place_problem

    assert store_place_problem(tmp_path / "new", tmp_path / "dicom") is None
    (tmp_path / "empty").mkdir()
    assert store_place_problem(tmp_path / "empty") is None
    store = tmp_path / "store"
    (store / "shards").mkdir(parents=True)
    for name in ("store.json", "manifest.parquet", "studies.parquet", ".salt", "store.json.tmp-1234"):
        (store / name).write_text("")
    assert store_place_problem(store, tmp_path / "dicom") is None
    assert store_place_problem(tmp_path / "dicom2", tmp_path / "dicom") is None  # a sibling, not inside


def test_prepare_empty_folder_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    _no_ray(monkeypatch)
    (tmp_path / "empty").mkdir()
    (tmp_path / "reports.csv").write_text("accession_number,report_text\n")
    line = _one_line_error(_prepare(tmp_path / "empty", tmp_path, tmp_path / "store"))
    assert "no files under it" in line
    assert not (tmp_path / "store").exists()


def test_inspect_names_non_mr_files_apart_from_unreadable(dicom, tmp_path):
    from tests.dicom.faults import make_fault

    make_fault("non_mr", dicom / "ct.dcm")
    make_fault("not_dicom", dicom / "junk.dcm")
    res = CliRunner().invoke(main, ["inspect", str(dicom)])
    assert res.exit_code == 0, res.output
    assert "1 readable DICOM file(s) are not MR images (CT 1): skipped" in res.output
    assert "1 file(s) could not be read as DICOM" in res.output


def test_inspect_folder_without_mr_fails_plainly(tmp_path):
    from tests.dicom.faults import make_fault

    (tmp_path / "empty").mkdir()
    assert "no files; nothing to inspect" in _one_line_error(CliRunner().invoke(main, ["inspect", str(tmp_path / "empty")]))
    (tmp_path / "ct").mkdir()
    make_fault("non_mr", tmp_path / "ct" / "1.dcm")
    res = CliRunner().invoke(main, ["inspect", str(tmp_path / "ct")])
    assert res.exit_code != 0 and "none of them an MR image series" in res.output and "CT 1" in res.output
    assert "study" not in res.output.splitlines()[0]  # no empty table


def test_inspect_out_checked_before_the_scan_and_folder_made(dicom, tmp_path, monkeypatch):
    import cmr_ray.data.inspect as inspect_mod

    res = CliRunner().invoke(main, ["inspect", str(dicom), "--out", str(tmp_path / "new" / "deeper" / "s.csv")])
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(open(tmp_path / "new" / "deeper" / "s.csv")))) == 6

    def no_scan(*a, **k):
        raise AssertionError("scanned before checking --out")

    monkeypatch.setattr(inspect_mod, "scan_dir", no_scan)
    assert "expected a .csv or .parquet" in _one_line_error(
        CliRunner().invoke(main, ["inspect", str(dicom), "--out", str(tmp_path / "s.xlsx")]))
