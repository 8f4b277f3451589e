"""Bad input and an interrupted store write through `prepare` (issue 8).

One fault corpus (tests/faults/corpus.py: a 13-study synthetic cohort, 7 studies damaged,
real CT/SR/US files mixed in) is prepared ONCE, and the undamaged cohort once as the
reference; the tests below assert many things about those two runs:
- prepare finishes; the manifest has one row per input file, each damaged file with its
  specific reason; the summary counts add up to the number of input files;
- the clean studies' rows are byte-identical to the reference run, and a damaged study
  keeps every view its damage did not touch, byte for byte;
- a store whose write was SIGKILLed midway (plus a planted half-written temp shard and a
  truncated shard) is complete and valid after `prepare` runs again, which keeps the shards
  the killed run committed (untouched on disk) and decodes only the others.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from cmr_ray.config import load_config
from cmr_ray.data.prepare import prepare
from cmr_ray.data.reader import load_split, shard_paths
from cmr_ray.views import SLOTS
from tests.faults.corpus import CLEAN, CP1252_LINE, DAMAGE, build_corpus
from tests.netutil import _children

pytestmark = pytest.mark.integration
CFG = load_config(overrides={"data.image_size": 32})
CLI = str(Path(sys.executable).with_name("cmr-ray"))


@pytest.fixture(scope="module")
def ray_mod():
    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def manifest(store) -> dict[str, dict]:
    return {r["path"]: r for r in pq.read_table(Path(store) / "manifest.parquet").to_pylist()}


def files_under(root) -> list[str]:
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def rows_by_study_dir(store, man) -> dict[str, dict]:
    """{study dir ('00006'): store row} through the manifest's study keys."""
    key_of = {}
    for path, r in man.items():
        if r["study_key"]:
            key_of.setdefault(path.split("/")[0], r["study_key"])
    rows = {r["study_key"]: r for r in load_split(store, SLOTS)}
    return {d: rows[k] for d, k in key_of.items() if k in rows}


@pytest.fixture(scope="module")
def runs(cohort, tmp_path_factory, ray_mod):
    base = tmp_path_factory.mktemp("ingest")
    corpus = build_corpus(cohort, base / "corpus")
    kw = dict(cfg=CFG, num_cpus=2, progress=False)
    ref = prepare(cohort / "dicom", cohort / "reports.csv", base / "ref", labels=cohort / "labels.csv", **kw)
    dirty = prepare(corpus.dicom, corpus.reports, base / "dirty", labels=corpus.labels, **kw)
    ref_man, man = manifest(base / "ref"), manifest(base / "dirty")
    return SimpleNamespace(corpus=corpus, ref=ref, dirty=dirty, base=base, ref_man=ref_man, man=man,
                           ref_rows=rows_by_study_dir(base / "ref", ref_man),
                           rows=rows_by_study_dir(base / "dirty", man))


def test_every_input_file_has_one_manifest_row_and_counts_add_up(runs):
    on_disk = files_under(runs.corpus.dicom)
    assert sorted(runs.man) == on_disk
    s = runs.dirty
    assert s.input_files == len(on_disk) == sum(s.files.values())
    assert Counter(r["status"] for r in runs.man.values()) == Counter(s.files)
    assert set(s.files) <= {"used", "ignored", "failed"}
    assert all(r["reason"] for r in runs.man.values() if r["status"] != "used"), "a file left out without a reason"
    for status, n in s.files.items():  # the printed summary shows the same counts
        assert any(line.split() == [status, str(n)] for line in s.text.splitlines()), (status, s.text)
    # the CT, SR and US files fail at the header and never form a study
    assert s.studies_used + sum(s.studies_excluded.values()) == len(DAMAGE) + len(CLEAN)


def test_damaged_files_have_their_specific_reason(runs):
    for path, (status, fragment) in sorted(runs.corpus.expect.items()):
        row = runs.man[path]
        assert row["status"] == status and fragment in row["reason"], (path, status, fragment, row)
    # the rest of the LGE SAX series whose one file does not decode: ignored, and says why
    bad = next(p for p, (st, f) in runs.corpus.expect.items() if f.startswith("cannot decode"))
    rest = [p for p in runs.corpus.series["00007"]["lge_sax"] if p != bad]
    for p in rest:
        assert runs.man[p]["status"] == "ignored" and f"series not decodable ({bad}:" in runs.man[p]["reason"]


def test_study_level_reasons(runs):
    s = runs.corpus.series
    why = {"00010": "2 different reports for one accession number", "00011": "no report",
           "00012": "report has no impression"}
    for d, reason in why.items():
        for key, paths in s[d].items():
            for p in paths:
                r = runs.man[p]
                if p in runs.corpus.expect:
                    continue  # its own failure is the more specific reason
                if key.startswith("other:"):
                    assert r["status"] == "ignored" and r["reason"].startswith("series classified other"), r
                else:
                    assert r["status"] == "ignored" and r["reason"] == f"study excluded: {reason}", r
    assert runs.dirty.studies_excluded == {reason: 1 for reason in why.values()}
    assert runs.dirty.studies_used == len(CLEAN) + 4  # 00006-00009 keep some views
    assert set(runs.rows) == set(CLEAN) | {"00006", "00007", "00008", "00009"}


def test_clean_studies_are_byte_identical_to_a_run_without_bad_input(runs):
    assert runs.ref.studies_used == len(CLEAN) + len(DAMAGE)
    for d in CLEAN:
        assert runs.rows[d] == runs.ref_rows[d], d  # every column: frames, shapes, impression, labels, split
        assert runs.rows[d]["cine_sax"] is not None


def _same_views(d, runs, except_slots=()):
    got, want = runs.rows[d], runs.ref_rows[d]
    for slot in SLOTS:
        if slot not in except_slots:
            assert got[slot] == want[slot] and got[f"{slot}_shape"] == want[f"{slot}_shape"], (d, slot)


def test_damaged_studies_keep_every_view_the_damage_did_not_touch(runs):
    # InstanceNumber missing/duplicated, no file meta, no transfer syntax: nothing changes
    _same_views("00006", runs)
    # non-UTF-8 report: decoded (cp1252), not mangled
    assert runs.rows["00006"]["impression"].endswith(CP1252_LINE)
    # undecodable LGE SAX file: that view is lost, the rest is intact
    _same_views("00007", runs, except_slots=["lge_sax"])
    assert runs.rows["00007"]["lge_sax"] is None and runs.ref_rows["00007"]["lge_sax"] is not None
    # cine SAX with a missing phase: that view is lost
    _same_views("00008", runs, except_slots=["cine_sax"])
    assert runs.rows["00008"]["cine_sax"] is None
    # one LGE SAX slice of another size: that slice is left out, the stack kept
    _same_views("00009", runs, except_slots=["lge_sax"])
    want = runs.ref_rows["00009"]["lge_sax_shape"]
    assert runs.rows["00009"]["lge_sax_shape"] == [want[0] - 1, *want[1:]]


def test_files_used_despite_a_warning_say_so(runs):
    """InstanceNumber missing or duplicated is not fatal (phases are ordered by TriggerTime),
    but the manifest row is the only trace of it: a used file keeps the series' warning."""
    s = runs.corpus.series["00006"]
    for key, word in (("cine_4ch", "InstanceNumber missing"), ("cine_2ch", "InstanceNumber duplicated")):
        for p in s[key]:
            r = runs.man[p]
            assert r["status"] == "used", r
            assert word in r["reason"], f"{p}: used with reason {r['reason']!r}; the series warning '{word} ...' is lost"


# ---------------------------------------------------------------- interrupted store write

def _link_studies(src: Path, dst: Path, studies) -> None:
    for d in studies:
        for f in (src / d).rglob("*"):
            if f.is_file():
                t = dst / f.relative_to(src)
                t.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, t)


def _kill_tree(proc) -> None:
    pids = _children(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:  # Ray's own processes may have left the group
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def test_store_write_killed_midway_is_repaired_by_rerunning_prepare(cohort, runs, tmp_path):
    src, inc, store = cohort / "dicom", tmp_path / "inc", tmp_path / "store"
    reports, labels = cohort / "reports.csv", cohort / "labels.csv"
    _link_studies(src, inc, ["00000", "00001"])
    first = prepare(inc, reports, store, labels=labels, cfg=CFG, num_cpus=2, progress=False)
    assert first.studies_used == 2
    before = {p.name for p in (store / "shards").iterdir()}
    _link_studies(src, inc, sorted(p.name for p in src.iterdir() if p.name not in ("00000", "00001")))

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(tmp_path / "prepare.log", "wb")
    proc = subprocess.Popen([CLI, "prepare", str(inc), "--reports", str(reports), "--labels", str(labels),
                             "--out", str(store), "--image-size", "32", "--num-cpus", "2"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    seen, deadline = set(), time.time() + 300
    try:  # killed once it has committed a shard (a journal entry), long before it ends
        while proc.poll() is None and time.time() < deadline:
            seen = {p.name for p in (store / "shards").iterdir()} - before
            if seen and list((store / "journal").glob("*.json")):
                break
            time.sleep(0.02)
    finally:
        finished = proc.poll() is not None
        _kill_tree(proc)
        log.close()
    assert seen and not finished, ("prepare was not caught writing shards: "
                                   + (tmp_path / "prepare.log").read_text()[-2000:])
    registry = pq.read_table(store / "studies.parquet").to_pylist()
    assert len(registry) == 2, "the kill came after the commit; nothing was interrupted"
    committed = {}  # what the killed run committed: {shard: its studies}
    for p in (store / "journal").glob("*.json"):
        for r in json.loads(p.read_text())["studies"]:
            if r["status"] == "used":
                committed.setdefault(r["shard"], set()).add(r["study_key"])
    assert committed, "no shard was committed before the kill"
    kept_bytes = {n: (store / "shards" / n).read_bytes() for n in committed}
    kept_mtime = {n: (store / "shards" / n).stat().st_mtime_ns for n in committed}

    # what a crash on a filesystem without atomic rename could also leave behind
    shards = sorted((store / "shards").glob("part-*.parquet"))
    data = shards[0].read_bytes()
    (store / "shards" / "part-feedfacefeedface.parquet.tmp-0badc0de").write_bytes(data[: len(data) // 2])
    (store / "shards" / "part-0123456789abcdef.parquet").write_bytes(data[: int(len(data) * 0.6)])
    assert not any(".tmp-" in p for p in shard_paths(store)[1]), "a temp shard is listed as a shard"

    again = prepare(inc, reports, store, labels=labels, cfg=CFG, num_cpus=2, progress=False)
    assert again.studies_used == runs.ref.studies_used
    # shard-level resume: the committed shards are kept as they are; only the rest is decoded
    n_kept = sum(len(v) for v in committed.values())
    assert (again.shards_reused, again.studies_reused) == (len(committed), n_kept)
    assert again.studies_written == runs.ref.studies_used - first.studies_used - n_kept
    assert again.shards_written >= 1
    assert (f"kept the {len(committed)} shard(s) ({n_kept} studies) it had committed; decoded "
            f"{again.shards_written} shard(s) ({again.studies_written} studies) in this run") in again.text
    for n in committed:
        assert (store / "shards" / n).read_bytes() == kept_bytes[n], f"committed shard {n} was rewritten"
        assert (store / "shards" / n).stat().st_mtime_ns == kept_mtime[n], f"committed shard {n} was rewritten"
    left = [p.name for p in store.rglob("*") if ".tmp-" in p.name]
    assert not left, f"temp files left in the store: {left}"
    assert not (store / "shards" / "part-0123456789abcdef.parquet").exists()
    keys = []
    for p in sorted((store / "shards").iterdir()):
        keys += pq.read_table(p, columns=["study_key"]).column(0).to_pylist()  # every shard readable
    assert len(keys) == len(set(keys)), "a study is in two shards"
    registry = pq.read_table(store / "studies.parquet").to_pylist()
    assert sorted(keys) == sorted(r["study_key"] for r in registry if r["status"] == "used")
    got = {r["study_key"]: r for r in load_split(store, SLOTS)}
    want = {r["study_key"]: r for r in load_split(runs.base / "ref", SLOTS)}
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k], k  # complete and byte-identical to an uninterrupted run
    assert sorted(manifest(store)) == files_under(inc)
