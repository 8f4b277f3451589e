"""The fault corpus: a synthetic cohort with damage in copies of some studies, plus real
files from other scanners that a hospital archive mixes in (issue 8, bad input).

    corpus = build_corpus(cohort_dir, tmp_path / "corpus")
    corpus.dicom, corpus.reports, corpus.labels     # inputs for `prepare`
    corpus.expect    # {relpath: (status, reason fragment)} for every damaged file
    corpus.series    # {study dir: {series key: [relpaths]}}  e.g. series["00006"]["cine_4ch"]
    corpus.cases     # {case name: what it did}; len(corpus.cases) = bad-input cases tried

Studies 00000-00005 stay clean (byte copies).  The damaged ones (see DAMAGE) are copies of
studies 00006-00012, so a reference run over the undamaged cohort has the same study keys:
clips can be compared study by study.  Series are found by their SeriesDescription with
`cmr_ray.dicom.classify_description`, not by folder number.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from tests.dicom import faults

CLEAN = [f"{i:05d}" for i in range(6)]
# study dir -> what is done to it (the cohort's seed 10 makes 00007 JPEG 2000 and 00011 RLE)
DAMAGE = {
    "00006": "InstanceNumber missing (cine 4ch) and duplicated (cine 2ch); cine 3ch files without "
             "file meta or transfer syntax; report text in cp1252",
    "00007": "one LGE SAX file with undecodable JPEG 2000 pixel data",
    "00008": "cine SAX series with a missing phase",
    "00009": "one LGE SAX file with other Rows/Columns; eight damaged files in its other series",
    "00010": "two different reports",
    "00011": "no report; one truncated compressed file",
    "00012": "a report without an impression",
}
CP1252_LINE = "5. Caf\u00e9-au-lait spots na\u00efve \u00b5 \u2013 incidental."
# file-level damage put into the 'other' (localizer, T1 map, flow) series of study 00009:
# builder name in tests/dicom/faults.py -> the start of the manifest reason
FILE_FAULTS = {
    "zero_byte": "empty file (0 bytes)",
    "not_dicom": "not a DICOM file",
    "truncated": "truncated: pixel data needs",
    "no_pixel_data": "no pixel data",
    "wrong_syntax_compressed": "transfer syntax RLE Lossless says compressed but pixel data is not encapsulated",
    "unknown_syntax": "unknown transfer syntax 1.2.840.10008.1.2.9",
    "wrong_size": "pixel data is",
}
# real files from other scanners, copied in as they are (pydicom's test files)
FOREIGN = {
    "CT_small.dcm": ("failed", "modality CT is not MR"),
    "test-SR.dcm": ("failed", "modality SR is not MR"),
    "US1_UNCR.dcm": ("failed", "modality US is not MR"),
}


@dataclass
class Corpus:
    dicom: Path
    reports: Path
    labels: Path
    expect: dict = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    cases: dict = field(default_factory=dict)


def series_of(study_dir: Path, root: Path) -> dict[str, list[str]]:
    """{'cine_sax': [relpaths], ..., 'other:SE0001': [...]} from each series' first header."""
    from cmr_ray.dicom import classify_description

    out = {}
    for d in sorted(p for p in study_dir.iterdir() if p.is_dir()):
        files = sorted(d.glob("*.dcm"))
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        seq, view, _ = classify_description(str(ds.get("SeriesDescription", "")), str(ds.get("ProtocolName", "")))
        key = f"{seq}_{view}" if seq in ("cine", "lge") and view != "none" else f"other:{d.name}"
        out[key] = [f.relative_to(root).as_posix() for f in files]
    return out


def _edit(path: Path, fn) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path)


def _no_instance_number(ds):
    del ds.InstanceNumber


def _instance_one(ds):
    ds.InstanceNumber = 1


def _other_size(ds):
    ds.Rows, ds.Columns = 80, 80
    ds.PixelData = np.full((80, 80), 300, np.uint16).tobytes()


def build_corpus(cohort: Path, out: Path) -> Corpus:
    cohort, out = Path(cohort), Path(out)
    root = out / "dicom"
    shutil.copytree(cohort / "dicom", root)
    c = Corpus(root, out / "reports.csv", cohort / "labels.csv")
    c.series = {d: series_of(root / d, root) for d in CLEAN + list(DAMAGE)}
    s = c.series

    # 00006: ordering metadata damaged; the clip must not change
    for p in s["00006"]["cine_4ch"]:
        _edit(root / p, _no_instance_number)
    for p in s["00006"]["cine_2ch"]:
        _edit(root / p, _instance_one)
    nometa = s["00006"]["cine_3ch"][0]
    faults.no_file_meta(root / nometa, root / nometa)
    nots = s["00006"]["cine_3ch"][1]
    faults.no_transfer_syntax(root / nots, root / nots)  # pydicom infers it: the file must still be used
    c.cases["instance number missing"] = s["00006"]["cine_4ch"]
    c.cases["instance number duplicated"] = s["00006"]["cine_2ch"]
    c.cases["no file meta"] = [nometa]
    c.cases["no transfer syntax"] = [nots]
    c.expect[nometa] = c.expect[nots] = ("used", "")

    # 00007 (JPEG 2000): one LGE SAX file does not decode
    bad = s["00007"]["lge_sax"][0]
    faults.undecodable(root / bad, root / bad)
    c.expect[bad] = ("failed", "cannot decode pixel data (JPEG 2000")
    c.cases["undecodable compressed pixel data"] = [bad]

    # 00008: a cine SAX phase is missing
    gone = s["00008"]["cine_sax"][len(s["00008"]["cine_sax"]) // 2]
    (root / gone).unlink()
    s["00008"]["cine_sax"].remove(gone)
    for p in s["00008"]["cine_sax"]:
        c.expect[p] = ("failed", "missing phase")
    c.cases["cine series with a missing phase"] = s["00008"]["cine_sax"]

    # 00009: one LGE SAX file of another size; file-level damage in the other series
    odd = s["00009"]["lge_sax"][2]
    _edit(root / odd, _other_size)
    c.expect[odd] = ("failed", "Rows x Columns 80x80 differs from the series' 96x96")
    c.cases["inconsistent Rows/Columns"] = [odd]
    others = [p for k, ps in sorted(s["00009"].items()) if k.startswith("other:") for p in ps]
    assert len(others) >= len(FILE_FAULTS), others
    for (name, reason), p in zip(FILE_FAULTS.items(), others):
        getattr(faults, name)(root / p, root / p)
        c.expect[p] = ("failed", reason)
        c.cases[name.replace("_", " ")] = [p]

    # 00011 (RLE): a truncated compressed file (its study has no report, see below)
    other11 = next(ps for k, ps in sorted(s["00011"].items()) if k.startswith("other:"))
    faults.truncated(root / other11[0], root / other11[0], keep=0.8)
    c.expect[other11[0]] = ("failed", "truncated: encapsulated pixel data has no end delimiter")
    c.cases["truncated compressed"] = [other11[0]]

    # real files of other modalities and vendors
    (root / "zz_foreign").mkdir()
    for name, want in FOREIGN.items():
        shutil.copyfile(faults.real_file(name), root / "zz_foreign" / name)
        c.expect[f"zz_foreign/{name}"] = want
        c.cases[f"non-MR {name}"] = [f"zz_foreign/{name}"]

    _write_reports(cohort, c.reports, s, c)
    return c


def _accession(root: Path, files: list[str]) -> str:
    return str(pydicom.dcmread(root / files[0], stop_before_pixels=True).AccessionNumber)


def _write_reports(cohort: Path, dst: Path, series: dict, c: Corpus) -> None:
    with open(cohort / "reports.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], {r[0]: r[1] for r in rows[1:]}
    acc = {d: _accession(cohort / "dicom", next(iter(ss.values()))) for d, ss in series.items()}
    out = io.BytesIO()

    def put(row, encoding="utf-8"):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        out.write(buf.getvalue().encode(encoding))

    put(header)
    for d in CLEAN + ["00007", "00008", "00009"]:
        put([acc[d], body[acc[d]]])
    put([acc["00006"], body[acc["00006"]].rstrip() + "\n" + CP1252_LINE + "\n"], "cp1252")
    c.cases["non-UTF-8 report text"] = [acc["00006"]]
    put([acc["00010"], body[acc["00010"]]])
    put([acc["00010"], body[acc["00010"]].rstrip() + "\nAddendum: revised after review.\n"])
    c.cases["study with two reports"] = [acc["00010"]]
    c.cases["study with no report"] = []          # 00011: no row
    text = body[acc["00012"]]
    cut = re.search(r"^[ \t]*impression[ \t]*:?[ \t]*$", text, re.I | re.M)
    put([acc["00012"], text[: cut.start()]])
    c.cases["report with no impression"] = [acc["00012"]]
    dst.write_bytes(out.getvalue())
