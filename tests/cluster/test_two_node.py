"""A two-node Ray cluster on this machine (fixture `two_node_cluster`): work spreads to
both nodes, and node-specific resources pin work where it is asked for.

Other tests (prepare, the smoke sweep) can join the same cluster by taking the fixture
and passing `two_node_cluster["address"]` as `--address`.
"""
from __future__ import annotations

import os

import pytest

from tests.netutil import is_loopback, listening_sockets_of_tree

pytestmark = pytest.mark.integration


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
