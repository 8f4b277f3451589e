"""A two-node Ray cluster on this machine (fixture `two_node_cluster`): work spreads to
both nodes, and node-specific resources pin work where it is asked for.

`test_prepare_and_sweep_on_two_nodes` runs the real CLI against it, as a user would:
`cmr-ray prepare ... --address ADDR` on a small synthetic cohort, then
`cmr-ray sweep experiments/smoke.yaml --address ADDR --set ...` (2 trials), and checks
from the nodes' log files that both nodes did the work of each (nothing is pinned).

    .venv/bin/python -m pytest -q tests/cluster/test_two_node.py      # a few minutes
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netutil import is_loopback, listening_sockets_of_tree

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _tag_node(batch):
    import ray

    batch["node"] = [ray.get_runtime_context().get_node_id()] * len(batch["id"])
    batch["pid"] = [os.getpid()] * len(batch["id"])
    return batch


def test_ray_data_job_runs_on_both_nodes(two_node_cluster):
    import ray

    ray.init(address=two_node_cluster["address"], logging_level="WARNING")
    try:
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert alive == set(two_node_cluster["nodes"].values())
        for n in ray.nodes():  # both nodes are on loopback, and nothing listens beyond it
            assert n["NodeManagerAddress"] == "127.0.0.1"
        socks = listening_sockets_of_tree(os.getpid())
        assert socks and all(is_loopback(ip) for ip, _ in socks), socks

        rows = ray.data.range(8, override_num_blocks=8).map_batches(_tag_node, batch_size=None).take_all()
        assert sorted(r["id"] for r in rows) == list(range(8))
        used = {r["node"] for r in rows}
        assert used == set(two_node_cluster["nodes"].values()), f"tasks ran on {used}"

        where = ray.remote(lambda: ray.get_runtime_context().get_node_id())
        assert ray.get(where.options(resources={"worker_node": 1}).remote()) == two_node_cluster["nodes"]["worker"]
        assert ray.get(where.options(resources={"head_node": 1}).remote()) == two_node_cluster["nodes"]["head"]
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ prepare + sweep via the CLI
#
# Where did the work run?  Without ray[default] there is no state API, so the evidence is
# what each node's processes leave in the session's log directory (both nodes of a
# `ray.cluster_utils.Cluster` share one):
#   python-core-driver-<JOBID>ffff…_<pid>.log   one per driver: the CLI process's job id
#   python-core-worker-<worker_id>_<pid>.log     "Initializing worker … node_id=<node>"
#   worker-<worker_id>-<job>-<pid>.out           ":job_id:<job>", then ":task_name:<name>" or
#                                               ":actor_name:<class>" for each task/actor run
# Joined on worker_id, they give every task and actor a job ran and the node it ran on,
# after the fact (no sampling race).

COHORT_STUDIES = 24
# Sized for 24 studies: enough validation studies, and a batch the train split fills.
SETTINGS = {"data.synth_studies": COHORT_STUDIES, "data.val_fraction": 0.2, "data.test_fraction": 0.25,
            "train.batch_size": 8, "train.torch_threads": 1}
TRIALS = '[{data.views: "cine:sax"}, {data.views: "cine:sax+4ch|lge:sax"}]'


def job_of_driver(logs: Path, pid: int) -> str:
    """The Ray job id of the driver process `pid` (e.g. '02000000')."""
    found = sorted(logs.glob(f"python-core-driver-*_{pid}.log"))
    assert len(found) == 1, f"no single driver log for pid {pid} in {logs}: {found}"
    return found[0].name[len("python-core-driver-"):][:8]


def work_by_node(logs: Path, job: str) -> dict[str, set[str]]:
    """{node_id: names of the tasks and actors job `job` ran on that node}."""
    node_of = {}
    for f in logs.glob("python-core-worker-*.log"):
        wid = f.name[len("python-core-worker-"):].rsplit("_", 1)[0]
        m = re.search(r"Initializing worker .* node_id=([0-9a-f]+)", f.read_text(errors="replace"))
        if m:
            node_of[wid] = m.group(1)
    out: dict[str, set[str]] = {}
    for f in logs.glob("worker-*.out"):
        wid = f.name.split("-")[1]
        current = None
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith(":job_id:"):
                current = line[len(":job_id:"):]
            elif current == job and line.startswith((":task_name:", ":actor_name:")):
                assert wid in node_of, f"{f.name}: no core-worker log naming its node"
                out.setdefault(node_of[wid], set()).add(line.split(":", 2)[2])
    return out


def nodes_running(work: dict[str, set[str]], *names: str) -> set[str]:
    """The nodes on which some task/actor whose name contains one of `names` ran."""
    return {n for n, ran in work.items() if any(x in r for r in ran for x in names)}


def run_cli(args: list[str], cwd: Path, timeout: int) -> tuple[str, int]:
    """Run `cmr-ray ARGS` (the installed entry point); returns (output, pid)."""
    exe = Path(sys.executable).with_name("cmr-ray")
    env = dict(os.environ, RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1")
    t0 = time.time()
    proc = subprocess.Popen([str(exe), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"cmr-ray {args[0]} ran over {timeout} s:\n{out[-3000:]}")
    print(f"cmr-ray {args[0]}: {time.time() - t0:.0f} s")
    assert proc.returncode == 0, f"cmr-ray {args[0]} exited {proc.returncode}:\n{out[-4000:]}"
    return out, proc.pid


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cmr_ray.synth import generate_cohort

    out = tmp_path_factory.mktemp("two-node") / "cohort"
    generate_cohort(out, studies=COHORT_STUDIES, seed=0, workers=1, progress=False)
    return out


def test_prepare_and_sweep_on_two_nodes(two_node_cluster, cohort):
    addr, logs = two_node_cluster["address"], Path(two_node_cluster["logs"])
    nodes = set(two_node_cluster["nodes"].values())
    work = cohort.parent
    store = work / "store"
    exp = work / "two-node.yaml"  # `prepare` takes a config file, not --set
    data = ", ".join(f"{k[5:]}: {v}" for k, v in SETTINGS.items() if k.startswith("data."))
    exp.write_text(f"base: {REPO / 'experiments' / 'smoke.yaml'}\ndata: {{{data}}}\n")

    out, pid = run_cli(["prepare", str(cohort / "dicom"), "--reports", str(cohort / "reports.csv"),
                        "--labels", str(cohort / "labels.csv"), "--out", str(store),
                        "--config", str(exp), "--address", addr], cwd=work, timeout=300)
    assert (store / "store.json").exists(), out[-2000:]
    done = work_by_node(logs, job_of_driver(logs, pid))
    print("prepare:", {n[:8]: sorted(v) for n, v in done.items()})
    assert nodes_running(done, "index_batch") == nodes, f"header reads not on both nodes: {done}"
    assert nodes_running(done, "write_shard_batch") == nodes, f"decode tasks not on both nodes: {done}"

    db = work / "mlflow.db"
    sets = [f"data.store={store}", f"train.storage_path={work / 'ray_results'}", "sweep.register_model=''",
            f"sweep.trials={TRIALS}", *(f"{k}={v}" for k, v in SETTINGS.items())]
    out, pid = run_cli(["sweep", str(REPO / "experiments" / "smoke.yaml"), "--address", addr,
                        "--tracking-uri", f"sqlite:///{db}", *(a for s in sets for a in ("--set", s))],
                       cwd=work, timeout=480)
    done = work_by_node(logs, job_of_driver(logs, pid))
    print("sweep:", {n[:8]: sorted(v) for n, v in done.items()})
    assert "running 2 trial(s)" in out, out[-2000:]
    # the trials (Tune's trainable actor, then its Train worker) and their input pipelines
    # (Ray Data read and frame-sampling tasks) each used both nodes
    assert nodes_running(done, "ImplicitFunc", "RayTrainWorker") == nodes, f"trials not on both nodes: {done}"
    assert nodes_running(done, "RayTrainWorker") and nodes_running(done, "ImplicitFunc"), done
    assert nodes_running(done, "ReadParquet", "sample_rows") == nodes, f"data tasks not on both nodes: {done}"

    from mlflow.entities import ViewType

    from cmr_ray import tracking

    c = tracking.client(f"sqlite:///{db}")
    runs = c.search_runs([c.get_experiment_by_name("smoke").experiment_id], run_view_type=ViewType.ALL)
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(kids) == 2 and {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]
    for r in kids:
        assert "test/rsum" in r.data.metrics and [h.step for h in c.get_metric_history(r.info.run_id, "train/loss")] == [1, 2]
