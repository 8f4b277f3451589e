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
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {views: 'cine:5ch'}\n")
    res = CliRunner().invoke(main, args + ["--config", str(bad)])
    assert res.exit_code != 0 and "data.views" in res.output and "bad.yaml" in res.output, res.output
