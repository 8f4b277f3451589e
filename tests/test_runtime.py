"""The local Ray that cmr-ray starts by itself listens on 127.0.0.1 only.

Each check runs in a fresh Python whose environment lacks RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
(Ray's bind policy), so only `cmr_ray.runtime` can make it loopback-only: without the
code's setting these tests fail (Ray then listens on the machine's routable address).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netutil import is_loopback

REPO = Path(__file__).resolve().parents[1]
BIND_POLICY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
PROBE = """
import json, os, sys
if sys.argv[1] == "ray-imported-first":
    import ray  # Ray reads its bind policy here, before cmr_ray.runtime runs
from cmr_ray.runtime import init_ray
from tests.netutil import listening_sockets_of_tree
ray = init_ray(num_cpus=1)
try:
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
    print("SOCKETS " + json.dumps(listening_sockets_of_tree(os.getpid())), flush=True)
finally:
    ray.shutdown()
"""


def sockets_of_a_fresh_local_ray(mode: str) -> list:
    env = {k: v for k, v in os.environ.items() if k not in (BIND_POLICY, "RAY_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SOCKETS ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("SOCKETS "):])


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["fresh", "ray-imported-first"])
def test_local_ray_binds_loopback_only(mode):
    socks = sockets_of_a_fresh_local_ray(mode)
    assert socks, "found no listening sockets of the Ray processes"
    public = [(ip, port) for ip, port in socks if not is_loopback(ip)]
    assert not public, f"Ray listens beyond loopback: {public}"
