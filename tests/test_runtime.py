"""The local Ray that cmr-ray starts by itself listens on 127.0.0.1 only."""
import os
from pathlib import Path

import pytest

from tests.netutil import is_loopback, listening_sockets_of_tree


@pytest.mark.integration
def test_local_ray_binds_loopback_only():
    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=1)
    try:
        ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
        socks = listening_sockets_of_tree(os.getpid())
        assert socks, "found no listening sockets of the Ray processes"
        public = [(ip, port) for ip, port in socks if not is_loopback(ip)]
        assert not public, f"Ray listens beyond loopback: {public}"
    finally:
        ray.shutdown()
