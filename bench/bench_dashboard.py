"""What Ray's dashboard costs at start-up: `init_ray` of a local Ray with and without it.

    python bench/bench_dashboard.py --repeat 3 --cpus 2

Each round starts a fresh Python per setting (the two alternate, so load on the machine
falls on both), imports Ray, then times `cmr_ray.runtime.init_ray` (Ray's start-up, the
dashboard's included), the first task after it (a worker up), the memory of the Ray
processes then (PSS: shared pages split among the processes that share them), and the CPU time they use while the cluster sits idle for `--idle`
seconds (what the dashboard's collectors take from the work on a small machine).  Prints
every round side by side, the medians and their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE = r"""
import json, os, sys, time
import ray  # imported before the clock starts: the same cost either way
from cmr_ray.runtime import init_ray, dashboard_url
from tests.netutil import process_tree
t0 = time.perf_counter()
init_ray(num_cpus=int(sys.argv[1]), echo=None)
t1 = time.perf_counter()
ray.get(ray.remote(lambda: 1).remote())
t2 = time.perf_counter()
def tree(field):
    total = 0
    for pid in process_tree(os.getpid()) - {os.getpid()}:
        try:
            if field == "pss":  # proportional set size: shared pages split among their users
                for ln in open(f"/proc/{pid}/smaps_rollup"):
                    if ln.startswith("Pss:"):
                        total += int(ln.split()[1]) * 1024
            else:  # utime + stime, clock ticks
                f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total
pss = tree("pss")
c0 = tree("cpu")
time.sleep(float(sys.argv[2]))
idle_cpu = (tree("cpu") - c0) / os.sysconf("SC_CLK_TCK")
url = dashboard_url()
ray.shutdown()
print("RESULT " + json.dumps({"init_s": t1 - t0, "first_task_s": t2 - t1, "pss_mb": pss / 2**20,
                             "idle_cpu_pct": 100 * idle_cpu / float(sys.argv[2]), "url": url}))
"""


def one(dashboard: bool, cpus: int, idle: float) -> dict:
    env = {**os.environ, "CMR_RAY_DASHBOARD": "1" if dashboard else "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", ONE, str(cpus), str(idle)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"bench run (dashboard={dashboard}) failed, exit {proc.returncode}:\n{proc.stderr[-3000:]}")
    r = json.loads(lines[-1][len("RESULT "):])
    if bool(r["url"]) != dashboard:
        sys.exit(f"dashboard={dashboard} but the Ray started had dashboard URL {r['url']!r}")
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="num_cpus of the local Ray")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle cluster to measure CPU use over")
    args = ap.parse_args(argv)
    runs = {"with": [], "without": []}
    print(f"{'round':>5}  {'init with':>10} {'init without':>13}  {'+task with':>10} {'+task without':>13}"
          f"  {'PSS MB with':>11} {'PSS MB without':>14}  {'idle CPU% with':>14} {'idle CPU% without':>17}",
          flush=True)
    for i in range(args.repeat):
        for k in runs:
            runs[k].append(one(k == "with", args.cpus, args.idle))
        w, wo = runs["with"][-1], runs["without"][-1]
        print(f"{i + 1:>5}  {w['init_s']:>9.2f}s {wo['init_s']:>12.2f}s  {w['first_task_s']:>9.2f}s "
              f"{wo['first_task_s']:>12.2f}s  {w['pss_mb']:>11.0f} {wo['pss_mb']:>14.0f}  "
              f"{w['idle_cpu_pct']:>13.1f}% {wo['idle_cpu_pct']:>16.1f}%", flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("init_s", "first_task_s", "pss_mb", "idle_cpu_pct")}
           for k, v in runs.items()}
    w, wo = med["with"], med["without"]
    print(f"median init_ray: with the dashboard {w['init_s']:.2f} s, without {wo['init_s']:.2f} s; "
          f"ratio {w['init_s'] / wo['init_s']:.2f}, difference {w['init_s'] - wo['init_s']:+.2f} s")
    print(f"median init_ray + first task: with {w['init_s'] + w['first_task_s']:.2f} s, "
          f"without {wo['init_s'] + wo['first_task_s']:.2f} s")
    print(f"median PSS of Ray's processes: with {w['pss_mb']:.0f} MB, without {wo['pss_mb']:.0f} MB "
          f"({w['pss_mb'] - wo['pss_mb']:+.0f} MB)")
    print(f"median CPU use of Ray's processes, idle cluster ({args.idle:g} s): with {w['idle_cpu_pct']:.1f} % "
          f"of one core, without {wo['idle_cpu_pct']:.1f} %")


if __name__ == "__main__":
    main()
