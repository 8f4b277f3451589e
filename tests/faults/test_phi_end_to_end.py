"""PHI end to end, and what the commands listen on (issue 8, security and privacy).

One pipeline run, through the real `cmr-ray` commands in subprocesses, from a working
directory of its own and with Ray's temp dir (RAY_TMPDIR) of its own:
  cmr-ray prepare  (synthetic cohort with fake PHI in every identifying header and in the
                    report text, plus distinctive values of our own: ZZPHI^Testname ...)
  cmr-ray sweep    (experiments/smoke.yaml cut to one trial, one epoch)
  cmr-ray eval     (the best trial's checkpoint)
Then every byte under the working directory (store, manifest, mlflow.db, MLflow artifacts
with the logged model and checkpoint, Ray's results directory, eval output, the commands'
captured stdout/stderr) and under Ray's temp dir (session logs) is searched for every PHI
value (tests/faults/phiscan.py).  The same search over the inputs must find PHI (a check
that the search works).  While `cmr-ray prepare` runs, the listening TCP sockets of its
process tree are sampled: the local Ray it starts must bind 127.0.0.1 only.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest

from tests.faults.phiscan import cohort_phi_values, scan
from tests.netutil import is_loopback, listeners_with_owner

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("cmr-ray"))
OWN_STUDY = "00002"
OWN = {"PatientName": "ZZPHI^Testname", "PatientAddress": "77 Quillfeather Lane, Zedtown",
       "OtherPatientIDs": "ZZMRN991177", "OperatorsName": "Oprah^Xylophone",
       "PatientMotherBirthName": "Zabrowska^Quintessa"}
OWN_VALUES = list(OWN.values()) + ["ZZPHI", "Testname"]


def _add_own_phi(dicom: Path, reports: Path) -> str:
    """Our own distinctive PHI in every file of one study and in its report's impression."""
    acc = pid = birth = inst = None
    for f in sorted((dicom / OWN_STUDY).rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for k, v in OWN.items():
            setattr(ds, k, v)
        acc, pid, birth, inst = ds.AccessionNumber, ds.PatientID, ds.PatientBirthDate, ds.InstitutionName
        f.unlink()  # a new file: the cohort's copy may share storage
        ds.save_as(f)
    rows = list(csv.reader(io.StringIO(reports.read_text(encoding="utf-8"))))
    dob = f"{birth[6:]}/{birth[4:6]}/{birth[:4]}"
    for r in rows[1:]:
        if r[0] == acc:
            r[1] = (r[1].rstrip() + f"\n9. Discussed with ZZPHI Testname (MRN {pid}, DOB {dob}, "
                    f"accession {acc}) of {inst}, Testname, ZZPHI agreed.\n")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    reports.write_text(buf.getvalue(), encoding="utf-8")
    return acc


def _run(args, work, env, name, timeout=900, poll=None):
    """Run a cmr-ray command, stdout/stderr to work/logs/<name>.{out,err}; `poll(pid)` is
    called every 0.2 s while it runs."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{name}.out", "wb") as out, open(logs / f"{name}.err", "wb") as err:
        proc = subprocess.Popen([CLI, *args], cwd=work, env=env, stdout=out, stderr=err)
        t0 = time.time()
        while proc.poll() is None:
            if time.time() - t0 > timeout:
                proc.kill()
                proc.wait()
                break
            if poll is not None:
                poll(proc.pid)
            time.sleep(0.2)
    text = (logs / f"{name}.out").read_text(errors="replace") + (logs / f"{name}.err").read_text(errors="replace")
    assert proc.returncode == 0, f"cmr-ray {name} exited {proc.returncode}:\n{text[-4000:]}"
    return text


@pytest.fixture(scope="module")
def pipeline(cohort, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    inputs, work = base / "inputs", base / "work"
    work.mkdir()
    shutil.copytree(cohort / "dicom", inputs / "dicom")
    shutil.copyfile(cohort / "reports.csv", inputs / "reports.csv")
    shutil.copyfile(cohort / "labels.csv", inputs / "labels.csv")
    own_acc = _add_own_phi(inputs / "dicom", inputs / "reports.csv")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths have a length limit
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        env.update(RAY_TMPDIR=str(ray_tmp), RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1")

        sockets: dict[str, set] = {"prepare": set(), "sweep": set(), "eval": set()}

        def sampler(name):
            return lambda pid: sockets[name].update(listeners_with_owner(pid))

        store = work / "store"
        exp = work / "phi_e2e.yaml"  # 13 patients: wider val/test fractions give 4 train, 4 val, 5 test
        exp.write_text(
            f"base: {REPO / 'experiments' / 'smoke.yaml'}\n"
            f"data: {{store: {store}, image_size: 32, val_fraction: 0.2, test_fraction: 0.3}}\n"
            f"train: {{storage_path: {work / 'ray_results'}, epochs: 1, batch_size: 4, torch_threads: 1}}\n"
            "eval: {few_shot: [1], baselines: [zeroshot]}\n"
            "sweep:\n  experiment: phi_e2e\n  trials:\n    - {data.views: 'cine:sax+4ch|lge:sax'}\n")
        _run(["prepare", str(inputs / "dicom"), "--reports", str(inputs / "reports.csv"), "--labels",
              str(inputs / "labels.csv"), "--out", str(store), "--config", str(exp), "--num-cpus", "2"],
             work, env, "prepare", poll=sampler("prepare"))
        uri = f"sqlite:///{work / 'mlflow.db'}"
        _run(["sweep", exp.name, "--tracking-uri", uri], work, env, "sweep", poll=sampler("sweep"))

        from cmr_ray import tracking

        c = tracking.client(uri)
        e = c.get_experiment_by_name("phi_e2e")
        runs = c.search_runs([e.experiment_id])
        best = next(r for r in runs if r.data.tags.get("cmr.checkpoint_path"))
        _run(["eval", best.data.tags["cmr.checkpoint_path"], "--store", str(store), "--out", str(work / "eval_out")],
             work, env, "eval", poll=sampler("eval"))
        yield SimpleNamespace(base=base, inputs=inputs, work=work, ray_tmp=ray_tmp, store=store, runs=runs,
                              sockets={k: sorted(v) for k, v in sockets.items()}, own_acc=own_acc,
                              values=cohort_phi_values(cohort, extra=OWN_VALUES))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_the_pipeline_produced_what_is_scanned(pipeline):
    w = pipeline.work
    assert (pipeline.store / "manifest.parquet").exists() and list((pipeline.store / "shards").glob("*.parquet"))
    assert (w / "mlflow.db").exists() and any((w / "mlartifacts").rglob("*.yaml"))
    assert any((w / "ray_results").rglob("*")) and (w / "eval_out" / "metrics.json").exists()
    assert list(pipeline.ray_tmp.rglob("*.log")) or list(pipeline.ray_tmp.rglob("*.out")), "no Ray session logs"
    assert {r.info.status for r in pipeline.runs} == {"FINISHED"}


def test_no_phi_value_anywhere_in_the_outputs(pipeline):
    found = scan([pipeline.work, pipeline.ray_tmp], pipeline.values)
    print(f"\nPHI scan: {len(pipeline.values)} values ({len(found.patterns)} written forms) in "
          f"{found.files} files, {found.bytes / 1e6:.1f} MB: {len(found.hits)} hits")
    assert found.files > 50 and found.bytes > 1_000_000
    assert not found.hits, "\n".join(f"{p}: {v!r} as {pat!r}" for p, v, pat in found.hits[:20])


def test_the_scan_finds_phi_where_it_is(pipeline):
    """The same search over the inputs finds the PHI (our own values included)."""
    found = scan([pipeline.inputs / "reports.csv", pipeline.inputs / "dicom" / OWN_STUDY], pipeline.values)
    values = {v for _, v, _ in found.hits}
    assert {"ZZPHI^Testname", "ZZMRN991177", "77 Quillfeather Lane, Zedtown", pipeline.own_acc} <= values


@pytest.mark.parametrize("command", ["prepare", "sweep"])
def test_the_local_ray_of_a_command_listens_on_loopback_only(pipeline, command):
    socks = pipeline.sockets[command]
    assert socks, f"sampled no listening socket of `cmr-ray {command}` (did its Ray start?)"
    public = [s for s in socks if not is_loopback(s[0])]
    assert not public, f"`cmr-ray {command}` (its local Ray, Tune, Train) listens beyond loopback: {public}"


def test_eval_listens_on_loopback_only(pipeline):
    """`cmr-ray eval` needs no server; if it starts one, loopback only."""
    public = [s for s in pipeline.sockets["eval"] if not is_loopback(s[0])]
    assert not public, f"`cmr-ray eval` listens beyond loopback: {public}"
