"""`prepare`: DICOM studies + reports -> the de-identified, decode-once clip store.

    from cmr_ray.data.prepare import prepare
    summary = prepare("cohort/dicom", "cohort/reports.csv", "store", labels="cohort/labels.csv",
                      cfg=load_config("exp.yaml"), address=None, num_cpus=2)
    print(summary.text); summary.ok

Three passes on Ray (`cmr_ray.runtime.init_ray`):
1. index: the driver lists files, Ray Data reads headers in parallel (no pixels); the driver
   keeps a light header per file, the full one travels pickled to the task that plans its
   study (`cmr_ray.data.index.light_header`);
2. plan: the driver groups the small index by study and leaves out the studies whose file
   paths name their own PHI (whole path tokens; UID-named files not searched), with a
   masked manifest row per file, while the other studies go on;
   each study is then planned in plain Python over its own index rows
   (`cmr_ray.data.plan.plan_group`) by the task that writes it, so planning runs on every
   CPU instead of serially in the driver;
3. decode + write: Ray Data `map_batches`, one group of whole studies per task
   (`shard_groups`: groups of about equal estimated decode cost, several per CPU); each task
   plans its studies, decodes their chosen series and streams them (one row group per
   study) into one shard `STORE/shards/part-<hash>.parquet`, written under a temp name and
   renamed into place, and returns each study's plan (without grids) and manifest rows.
   No groupby over pixel data; pixels never pass through the driver.  A file is parsed
   once: the plan carries each native file's `pixel_layout` from the index, so decoding
   reads its pixel bytes directly (compressed and other files: a full read).

Incremental and restartable.  `STORE/studies.parquet` (the study registry) holds each
study's key, the fingerprint of its input files (path, size, mtime) and of its report and
labels, and the shard holding it; it and the manifest are written at the end of a run.
Each shard is committed as it finishes: once the shard is in place, the driver writes its
studies' registry rows and their files' manifest rows to the journal (`STORE/journal/`,
`cmr_ray.data.manifest.write_journal_entry`), which the end of the run folds into the two
tables and clears.  A re-run reads the registry, the manifest and any journal left by a run
killed midway; it indexes only new or changed files (plus the other files of studies they
touch), and rewrites only studies whose fingerprint changed, so the same input twice is a
no-op and a killed run costs only the shards in flight: the shards it committed are kept
(`Summary.shards_reused`), the others decoded again (`Summary.shards_written`).  On start,
temp files and shards neither the registry nor the journal names (written, never committed)
are deleted, an unreadable shard is deleted, and a study whose shard lost or lacks it is
redone: a half-written shard is never reused.

Privacy: study, patient and series keys are salted hashes (`cmr_ray.data.keys`); the
impression is scrubbed of the study's PHI values and of names after titles ('Dr. X').  The
manifest keeps each file's path relative to the DICOM dir as it is, because a path is how a
user finds the file again; so folder and file names under the DICOM dir must not carry PHI
(some archives name folders after patients or accession numbers: export them under neutral
names, or link them into a neutral tree, before `prepare`; a study whose paths name its
PHI is left out, its paths masked).  The synthetic cohort's names
(`00012/SE0005/7.dcm`) carry none.
"""
from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import os
import pickle
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cmr_ray.data import keys, storefs
from cmr_ray.data.index import error_reason, full_rows, index_ray, list_input_files, print_progress
from cmr_ray.data.manifest import (JOURNAL_DIR, MANIFEST_SCHEMA, STUDY_SCHEMA, clear_journal, file_row,
                                   read_journal, read_rows, summary_text, write_journal_entry, write_table)
from cmr_ray.data.schema import SCHEMA_VERSION, arrow_schema, encode_view
from cmr_ray.data.tables import load_labels, load_reports
from cmr_ray.views import combo_slots

# Settings a store is bound to: a later run with different ones would mix incompatible rows.
BOUND = ("image_size", "clip_percentiles", "views", "val_fraction", "test_fraction")


class PrepareError(RuntimeError):
    pass


@dataclass
class Summary:
    store: str
    studies_used: int = 0
    studies_written: int = 0          # (re)written in this run
    shards_written: int = 0           # shards written (decoded) in this run
    shards_reused: int = 0            # shards an interrupted run committed, kept by this one
    studies_reused: int = 0           # the studies in them
    studies_excluded: dict = field(default_factory=dict)   # reason -> count
    files: dict = field(default_factory=dict)              # status -> count
    input_files: int = 0
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)             # ray (start or join)/index/group/plan+write -> s
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.studies_used > 0


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- decode + write (workers)

def decode_study(plan, image_size: int, percentiles) -> tuple[dict, list]:
    """One store row for a study, and [(slot, abs path or None, reason)] for slots that failed."""
    from cmr_ray.dicom.pixels import load_grid, to_uint8

    row = {"study_key": plan.study_key, "patient_key": plan.patient_key, "split": plan.split,
           "impression": plan.impression, **plan.labels}
    failures = []
    for slot, sp in sorted(plan.slots.items()):
        try:
            frames = to_uint8(load_grid(sp.grid, sp.layouts), image_size, percentiles)
            row[slot], row[f"{slot}_shape"] = encode_view(frames)
        except Exception as e:  # a file whose pixels do not decode loses its slot, not the run
            failures.append((slot, getattr(e, "path", None), error_reason(e)))
    return row, failures


_RESULT_SCHEMA = pa.schema([
    ("study_key", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("shard", pa.string()), ("failures", pa.string()),
    ("plan", pa.binary()),    # pickled StudyPlan (grids and layouts left out) or Excluded
    ("files", pa.binary())])  # pickled {relpath: manifest row} of the study's files


def write_shard_batch(batch: pa.Table, store: str, salt: str, cfg: dict) -> pa.Table:
    """Ray Data batch function: a group of studies' index rows in; each study planned
    (`plan_group`), its chosen series decoded, all of the group's kept studies written as one
    shard; one result row per study out (kept, or excluded with the reason)."""
    from cmr_ray.data.plan import plan_group

    data = cfg["data"]
    required = combo_slots(data["views"])
    groups = [pickle.loads(b) for b in batch["group"].to_pylist()]
    plan = plan_group([(uid, full_rows(rows)) for g in groups for uid, rows in g["studies"]],
                      {a: t for g in groups for a, t in g["reports"].items()},
                      {a: v for g in groups for a, v in g["labels"].items()}, salt, cfg)
    fs, root = storefs.open_store(store)
    name = "part-" + keys.fingerprint(p.study_key for p in plan.studies)[:16] + ".parquet"
    path = storefs.join(root, "shards", name)
    tmp = f"{path}{storefs.TMP_MARK}{uuid.uuid4().hex[:8]}"
    schema = arrow_schema()
    writer, out = None, []

    def files_of(study):
        return pickle.dumps({p: plan.files[p] for p in study.files if p in plan.files})

    try:
        for p in plan.studies:
            row, failures = decode_study(p, data["image_size"], tuple(data["clip_percentiles"]))
            ok = any(row.get(s) is not None for s in required)
            if ok:
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema, filesystem=fs)
                writer.write_table(pa.Table.from_pylist([row], schema=schema))
            bad = ", ".join(sorted(f[0] for f in failures))
            light = dataclasses.replace(p, slots={k: dataclasses.replace(sp, grid=[], layouts={})
                                                  for k, sp in p.slots.items()})
            out.append({"study_key": p.study_key, "status": "used" if ok else "excluded",
                        "reason": "" if ok else f"no required view decodes (failed: {bad or 'none'})",
                        "shard": name if ok else None, "failures": json.dumps(failures),
                        "plan": pickle.dumps(light), "files": files_of(p)})
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        fs.move(tmp, path)
    for e in plan.excluded:
        out.append({"study_key": e.study_key, "status": "excluded", "reason": e.reason, "shard": None,
                    "failures": "[]", "plan": pickle.dumps(e), "files": files_of(e)})
    return pa.Table.from_pylist(out, schema=_RESULT_SCHEMA)


def index_cost(rows: list[dict]) -> int:
    """A study's decode work estimated from its (light) index rows: the sum of its files'
    `index.file_cost`.  Every series counts, also those planning will ignore."""
    return sum(r["header"]["decode_cost"] for r in rows if r["header"])


def shard_groups(items: list, cpus: int, cost, key, max_per_shard: int = 32, tasks_per_cpu: int = 4) -> list[list]:
    """Items (studies) grouped into shards (one write task each) of about equal cost: the
    most costly item goes to the group with the least cost so far (longest processing time
    first).  Several groups per CPU, so a core that finishes early takes the next one and no
    core waits long for the last; at most `max_per_shard` items in a group.  Groups come most
    costly first, each sorted by `key` (the same groups for the same input, in any order)."""
    if not items:
        return []
    n = min(len(items), max(tasks_per_cpu * max(cpus, 1), -(-len(items) // max_per_shard)))
    heap = [(0, i) for i in range(n)]
    groups: list[list] = [[] for _ in range(n)]
    total = [0] * n
    for it in sorted(items, key=lambda it: (-cost(it), key(it))):
        while True:
            _, i = heapq.heappop(heap)
            if len(groups[i]) < max_per_shard:
                break  # a full group leaves the heap
        groups[i].append(it)
        total[i] += cost(it)
        heapq.heappush(heap, (total[i], i))
    order = sorted(range(n), key=lambda i: (-total[i], i))
    return [sorted(groups[i], key=key) for i in order if groups[i]]


def _plan_and_write(by_study: dict, reports: dict, labels: dict, salt: str, store: str, cfg: dict,
                    cpus: int, progress: bool, commit=None):
    """Pass 2 and 3 in the workers: (Plan of every study, {study key: write result}).
    `commit(studies, excluded, files, results)` is called in the driver with each finished
    write task's output (one shard's studies), as it arrives."""
    import ray

    from cmr_ray.data.plan import Excluded, Plan, study_accession

    plan, results = Plan([], {}, []), {}
    if not by_study:
        return plan, results
    cost = {uid: index_cost(rows) for uid, rows in by_study.items()}
    groups = shard_groups(list(by_study.items()), cpus, cost=lambda it: cost[it[0]], key=lambda it: it[0])
    items = []
    for g in groups:
        accs = {study_accession(rows) for _, rows in g}
        packed = [(uid, [{"path": r["path"], "header": None, "error": r["error"], "blob": r["blob"]}
                        for r in rows]) for uid, rows in g]  # the task unpickles the full headers
        items.append({"group": pickle.dumps({
            "studies": packed, "reports": {a: reports[a] for a in accs if a in reports},
            "labels": {a: labels[a] for a in accs if a in labels}}, protocol=5)})
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(write_shard_batch, batch_size=1, batch_format="pyarrow",
                        fn_kwargs=dict(store=store, salt=salt, cfg=cfg))
    done = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        got = Plan([], {}, [])
        for r in batch.to_pylist():
            study = pickle.loads(r.pop("plan"))
            got.files.update(pickle.loads(r.pop("files")))
            if isinstance(study, Excluded):
                got.excluded.append(study)
            else:
                got.studies.append(study)
                results[study.study_key] = r
            done += 1
        if commit is not None:
            commit(got.studies, got.excluded, got.files, results)
        plan.studies += got.studies
        plan.excluded += got.excluded
        plan.files.update(got.files)
        if progress:
            print_progress(done, len(by_study), "studies planned and decoded")
    plan.studies.sort(key=lambda s: s.study_key)
    plan.excluded.sort(key=lambda e: e.study_key)
    return plan, results


# ---------------------------------------------------------------- store state (driver)

def _check_bound(info: dict, cfg: dict, salt_fp: str, store: str) -> None:
    if info.get("schema_version") != SCHEMA_VERSION:
        raise PrepareError(f"{store}: store schema version {info.get('schema_version')} "
                           f"(this cmr-ray writes {SCHEMA_VERSION}); use a new --out")
    if info.get("salt_fingerprint") != salt_fp:
        raise PrepareError(f"{store}: the salt differs from the one this store was written with "
                           f"(check {keys.SALT_ENV}); use the same salt or a new --out")
    for k in BOUND:
        if k in info.get("settings", {}) and info["settings"][k] != cfg["data"][k]:
            raise PrepareError(f"{store}: written with data.{k}={info['settings'][k]!r}, this "
                               f"config says {cfg['data'][k]!r}; use a new --out")


def _shard_contents(fs, shard_dir: str, progress: bool) -> dict[str, set]:
    """{shard name: study keys in it}; unreadable shards (a partial file) are deleted."""
    out = {}
    for path in storefs.list_files(fs, shard_dir, ".parquet"):
        name = path.rsplit("/", 1)[-1]
        try:
            with fs.open_input_file(path) as f:
                out[name] = set(pq.read_table(f, columns=["study_key"]).column(0).to_pylist())
        except Exception as e:
            _say(f"removing unreadable shard {name} ({error_reason(e)}); its studies are redone", progress)
            fs.delete_file(path)
    return out


def _remove_from_shards(fs, shard_dir, contents: dict, drop: set) -> None:
    """Rewrite shards without the studies in `drop` (atomic per shard)."""
    for name, studies in list(contents.items()):
        if not studies & drop:
            continue
        path = storefs.join(shard_dir, name)
        keep = studies - drop
        if not keep:
            fs.delete_file(path)
            del contents[name]
            continue
        with fs.open_input_file(path) as f:
            table = pq.read_table(f)
        table = table.filter(pc.is_in(table["study_key"], pa.array(sorted(keep))))
        tmp = f"{path}{storefs.TMP_MARK}{uuid.uuid4().hex[:8]}"
        pq.write_table(table, tmp, filesystem=fs, row_group_size=1)
        fs.move(tmp, path)
        contents[name] = keep


def _rows_of(studies, excluded, files: dict, results: dict, stamp: dict, rfps: dict, dicom_root: str):
    """({study key: registry row}, {relpath: manifest row}) of planned studies (`results`:
    their write results) and of `files` (their files' rows, or files of no study): what a
    shard's journal entry commits, and the end of the run writes."""
    manifest, registry = dict(files), {}
    for s in studies:
        res = results[s.study_key]
        for slot, path, reason in json.loads(res["failures"]):
            sp = s.slots[slot]
            bad = os.path.relpath(path, dicom_root).replace(os.sep, "/") if path else None
            for p in sp.files:
                why = reason if (bad is None or p == bad) else f"series not decodable ({bad}: {reason})"
                manifest[p] = file_row(p, "failed" if (bad is None or p == bad) else "ignored",
                                       why, s.study_key, sp.series_key, sp.sequence, sp.view)
        if res["status"] != "used":
            for p in s.files:
                if manifest[p]["status"] == "used":
                    manifest[p] = {**manifest[p], "status": "ignored", "reason": f"study excluded: {res['reason']}"}
        registry[s.study_key] = dict(study_key=s.study_key, status=res["status"], reason=res["reason"],
                                     shard=res["shard"], split=s.split, accession_key=s.accession_key,
                                     fingerprint=_study_fp([stamp[p].stamp for p in s.files],
                                                           rfps.get(s.accession_key, "")))
    for e in excluded:
        registry[e.study_key] = dict(study_key=e.study_key, status="excluded", reason=e.reason, shard=None,
                                     split=None, accession_key=e.accession_key,
                                     fingerprint=_study_fp([stamp[p].stamp for p in e.files],
                                                           rfps.get(e.accession_key, "")))
    prefix = dicom_root.rstrip(os.sep) + os.sep  # reasons name files relative to the DICOM dir
    for p, r in manifest.items():
        r["size"], r["mtime_ns"] = stamp[p].size, stamp[p].mtime_ns
        if r["reason"] and prefix in r["reason"]:
            r["reason"] = r["reason"].replace(prefix, "")
    return registry, manifest


def _report_fps(reports: dict, labels: dict, salt: str) -> dict[str, str]:
    out = {}
    for acc in set(reports) | set(labels):
        items = [f"r:{t}" for t in reports.get(acc, [])]
        items.append("l:" + json.dumps(labels.get(acc), sort_keys=True))
        out[keys.accession_key(salt, acc)] = keys.fingerprint(items)
    return out


def _study_fp(stamps: list[str], rfp: str) -> str:
    return keys.fingerprint(list(stamps) + [f"report:{rfp}"])


def _refuse_phi_paths(by_study: dict, files: dict, salt: str, progress: bool) -> list:
    """Take the studies with a file path naming their own PHI out of `by_study` (the manifest
    keeps paths): each such file gets a 'failed' row under its path with the PHI masked, the
    study's other files an 'ignored' row; the rest of the run goes on.  Returns their
    `plan.Excluded` entries and says on stderr which files (masked) and why."""
    from cmr_ray.data.manifest import file_row
    from cmr_ray.data.plan import Excluded, phi_paths_of, study_accession

    out, shown = [], []
    for uid, hits in phi_paths_of(by_study).items():
        rows = by_study.pop(uid)
        skey = keys.study_key(salt, uid)
        acc = study_accession(rows)
        kinds = ", ".join(dict.fromkeys(k for what, _ in hits.values() for k in what.split(", ")))
        reason = (f"{len(hits)} of its file paths name the study's {kinds} (PHI; the manifest keeps "
                  "paths): export it under neutral folder and file names")
        for r in rows:
            p = r["path"]
            if p in hits:
                what, masked = hits[p]
                files[p] = file_row(masked, "failed", f"path names the study's {what} (PHI): rename the "
                                    "file or folder; the path is shown masked", skey)
                shown.append(f"  {masked}: names the study's {what}")
            else:
                files[p] = file_row(p, "ignored", f"study excluded: {reason}", skey)
        out.append(Excluded(skey, reason, [r["path"] for r in rows], keys.accession_key(salt, acc) if acc else ""))
    if out:
        _say(f"{len(shown)} file path(s) name their study's PHI; {len(out)} stud{'y' if len(out) == 1 else 'ies'} "
             "left out, the rest go on (PHI masked below and in the manifest):", progress)
        _say("\n".join(shown[:10] + ([f"  ... and {len(shown) - 10} more"] if len(shown) > 10 else [])), progress)
    return out


# ---------------------------------------------------------------- the command

class _HideProgressNote:
    def filter(self, record):
        return "Progress bars disabled" not in record.getMessage()


def quiet_ray_data() -> None:
    """Ray Data's console chatter (execution plans, 'progress bars disabled') off; its
    session log files keep everything.  cmr-ray prints its own progress."""
    import logging

    for h in logging.getLogger("ray.data").handlers:
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(max(h.level, logging.WARNING))
            if not any(isinstance(f, _HideProgressNote) for f in h.filters):
                h.addFilter(_HideProgressNote())


@contextlib.contextmanager
def _all_cpus_to_tasks(ray):
    """Ray Data's per-operator reservation keeps half the CPUs for other operators' outputs;
    on a small cluster (2 CPUs) that runs prepare's single map operator one task at a time
    (the index pass of the benchmark cohort at 2 CPUs, interleaved rounds: 4.7-6.0 s with it,
    3.2-4.1 s without).  Off while prepare runs, restored after (the sweep's training datasets
    keep it).  `ray` None (nothing to do, no Ray started): no change."""
    ctx = ray.data.DataContext.get_current() if ray is not None else None
    before = getattr(ctx, "op_resource_reservation_enabled", None)
    if before is not None:
        ctx.op_resource_reservation_enabled = False
    try:
        yield
    finally:
        if before is not None:
            ctx.op_resource_reservation_enabled = before


def prepare(dicom_dir, reports, out, labels=None, cfg=None, address=None, num_cpus=None,
            progress: bool = True) -> Summary:
    from cmr_ray.config import load_config
    from cmr_ray.data.plan import group_index
    from cmr_ray.runtime import init_ray

    t0 = time.time()
    # -- refuse bad requests before any work (one line each; nothing started, nothing written)
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise PrepareError(f"--num-cpus {num_cpus}: must be a whole number >= 1 (every prepare task needs a CPU)")
    problem = storefs.store_place_problem(out, dicom_dir)
    if problem:
        raise PrepareError(problem)
    cfg = cfg or load_config()
    data = cfg["data"]
    reports_by_acc = load_reports(reports)
    labels_by_acc = load_labels(labels) if labels else {}
    files = list_input_files(dicom_dir)
    if not files:
        raise PrepareError(f"{dicom_dir}: no files under it (empty folder); no store written")
    stamp = {f.path: f for f in files}
    _say(f"{len(files)} files under {dicom_dir}; {len(reports_by_acc)} reports", progress)

    fs, root = storefs.open_store(out)
    shard_dir, journal_dir = storefs.join(root, "shards"), storefs.join(root, JOURNAL_DIR)
    for d in (shard_dir, journal_dir):
        fs.create_dir(d, recursive=True)
    for d in (root, shard_dir, journal_dir):
        storefs.remove_temp_files(fs, d)
    salt = keys.load_salt(fs, root)
    salt_fp = keys.salt_fingerprint(salt)
    info_path = storefs.join(root, "store.json")
    if storefs.exists(fs, info_path):
        _check_bound(json.loads(storefs.read_bytes(fs, info_path)), cfg, salt_fp, str(out))

    # -- what the store already holds, and what changed since
    prev_files = {r["path"]: r for r in read_rows(fs, storefs.join(root, "manifest.parquet"))}
    prev_studies = {r["study_key"]: r for r in read_rows(fs, storefs.join(root, "studies.parquet"))}
    # shards an interrupted run committed (its journal) count as written; the rest of its work is redone
    j_studies, j_files, j_entries = read_journal(fs, journal_dir)
    prev_studies.update(j_studies)
    prev_files.update(j_files)
    contents = _shard_contents(fs, shard_dir, progress)
    named = {s["shard"] for s in prev_studies.values() if s["shard"]}
    uncommitted = sorted(set(contents) - named)
    for name in uncommitted:  # written by an interrupted run, never committed
        fs.delete_file(storefs.join(shard_dir, name))
        del contents[name]
    rfps = _report_fps(reports_by_acc, labels_by_acc, salt)
    files_of: dict[str, list[str]] = {}
    for p, r in prev_files.items():
        if r["study_key"]:
            files_of.setdefault(r["study_key"], []).append(p)

    def unchanged(p):
        r, f = prev_files.get(p), stamp.get(p)
        return r is not None and f is not None and (r["size"], r["mtime_ns"]) == (f.size, f.mtime_ns)

    touched = set()
    for k, s in prev_studies.items():
        paths = files_of.get(k, [])
        fp = _study_fp([stamp[p].stamp for p in paths if p in stamp], rfps.get(s["accession_key"] or "", ""))
        in_shard = s["status"] != "used" or k in contents.get(s["shard"] or "", set())
        if not all(unchanged(p) for p in paths) or fp != s["fingerprint"] or not in_shard:
            touched.add(k)
    todo = [f for f in files if not unchanged(f.path)]

    t_ray = time.time()
    cpus = num_cpus
    ray = init_ray(address, num_cpus) if (todo or touched) else None
    if ray is not None:
        quiet_ray_data()
        have = ray.cluster_resources().get("CPU", 0)
        if have < 1:  # Ray Data's tasks would wait forever for a CPU
            raise PrepareError(f"the Ray cluster{' at ' + address if address else ''} has {have:g} CPUs; "
                               "prepare's tasks need at least 1")
        cpus = int(num_cpus or have)
    t_index = time.time()
    show = print_progress if progress else None
    with _all_cpus_to_tasks(ray):
        idx = index_ray(dicom_dir, todo, cpus, progress=show)
        new_keys = {keys.study_key(salt, r["header"]["study_instance_uid"]) for r in idx if r["header"]}
        touched |= new_keys & set(prev_studies)
        done = {r["path"] for r in idx}
        more = [stamp[p] for k in touched for p in files_of.get(k, []) if p in stamp and p not in done]
        idx += index_ray(dicom_dir, sorted(more, key=lambda f: f.path), cpus, progress=show)

    # -- group the new or changed studies; refuse PHI in paths before anything is written
    t_plan = time.time()
    by_study, unplaced = group_index(idx)
    phi_excluded = _refuse_phi_paths(by_study, unplaced, salt, progress)
    planned = {keys.study_key(salt, uid) for uid in by_study} | {e.study_key for e in phi_excluded}
    _remove_from_shards(fs, shard_dir, contents, touched | planned)
    for k in touched:
        prev_studies.pop(k, None)
    reused = [k for k in j_studies if k not in touched and k not in planned and j_studies[k]["status"] == "used"]
    reused_shards = {j_studies[k]["shard"] for k in reused}
    if j_entries:
        redo = sum(s["status"] == "used" for s in j_studies.values()) - len(reused)
        _say(f"resuming an interrupted run: {len(reused_shards)} shard(s) it committed ({len(reused)} studies) "
             f"kept; {len(uncommitted)} shard(s) it wrote but never committed removed"
             + (f"; {redo} committed stud{'y' if redo == 1 else 'ies'} redone (shard unreadable or input changed)"
                if redo else "") + f"; {len(by_study)} stud{'y' if len(by_study) == 1 else 'ies'} to plan and decode",
             progress)

    # -- plan each study and write its clips in the workers; each finished shard is committed
    #    to the journal as it arrives, so a killed run keeps it
    dicom_root = os.path.abspath(dicom_dir)
    new_registry, new_manifest, seq = {}, {}, [0]

    def commit(studies, excluded, files_done, results_so_far):
        reg, man = _rows_of(studies, excluded, files_done, results_so_far, stamp, rfps, dicom_root)
        write_journal_entry(fs, journal_dir, seq[0], list(reg.values()), list(man.values()))
        seq[0] += 1
        new_registry.update(reg)
        new_manifest.update(man)

    t_write = time.time()
    with _all_cpus_to_tasks(ray):
        plan, results = _plan_and_write(by_study, reports_by_acc, labels_by_acc, salt, str(out), cfg,
                                        cpus or 1, progress, commit=commit)
    phi_registry, other_rows = _rows_of([], phi_excluded, unplaced, {}, stamp, rfps, dicom_root)
    plan.excluded += phi_excluded
    phases = {"ray": t_index - t_ray, "index": t_plan - t_index, "group": t_write - t_plan,
              "plan+write": time.time() - t_write}

    # -- manifest and registry: untouched rows kept, the rest from this run
    manifest = {p: r for p, r in prev_files.items() if p in stamp and unchanged(p)
                and (r["study_key"] is None or r["study_key"] not in touched) and p not in done}
    manifest.update(new_manifest)
    manifest.update(other_rows)
    registry = {**prev_studies, **new_registry, **phi_registry}
    rows = [manifest[f.path] for f in files]
    studies = sorted(registry.values(), key=lambda s: s["study_key"])

    # -- commit: registry first (it names the shards), then manifest; they now hold the journal
    write_table(fs, storefs.join(root, "studies.parquet"), studies, STUDY_SCHEMA)
    write_table(fs, storefs.join(root, "manifest.parquet"), rows, MANIFEST_SCHEMA)
    clear_journal(fs, journal_dir)
    used = [s for s in studies if s["status"] == "used"]
    info = {
        "schema_version": SCHEMA_VERSION, "image_size": data["image_size"],
        "salt_fingerprint": salt_fp, "settings": {k: data[k] for k in BOUND},
        "counts": {"studies": len(used), "excluded": len(studies) - len(used),
                   "splits": dict(Counter(s["split"] for s in used)),
                   "files": dict(Counter(r["status"] for r in rows)),
                   "shards": len(storefs.list_files(fs, shard_dir, ".parquet"))},
    }
    storefs.write_bytes_atomic(fs, info_path, json.dumps(info, indent=2).encode())

    summary = Summary(store=str(out), studies_used=len(used),
                      studies_written=sum(r["status"] == "used" for r in results.values()),
                      shards_written=len({r["shard"] for r in results.values() if r["status"] == "used"}),
                      shards_reused=len(reused_shards), studies_reused=len(reused),
                      studies_excluded=dict(Counter(s["reason"] for s in studies if s["status"] != "used")),
                      files=dict(Counter(r["status"] for r in rows)), input_files=len(files),
                      seconds=time.time() - t0, phases=phases)
    excluded_now = len(plan.excluded) + sum(r["status"] != "used" for r in results.values())
    summary.text = summary_text(rows, studies) + (
        f"\n{summary.studies_written} studies written this run"
        + (f" ({excluded_now} of the {summary.studies_written + excluded_now} planned excluded, see above)"
           if excluded_now else "")
        + f", {len(used)} in the store "
        f"({summary.seconds:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        + f") -> {out}")
    if j_entries:
        summary.text += (f"\nresumed an interrupted run: kept the {summary.shards_reused} shard(s) "
                         f"({summary.studies_reused} studies) it had committed; decoded "
                         f"{summary.shards_written} shard(s) ({summary.studies_written} studies) in this run")
    return summary
