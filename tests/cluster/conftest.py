"""Fixtures for cluster-shaped tests: an S3-compatible server on 127.0.0.1 and a
two-node Ray cluster on this machine.

    def test_x(s3_bucket):            # "s3://<fresh bucket>", env pointing at moto
        fs, root = storefs.open_store(s3_bucket); storefs.write_bytes_atomic(fs, root + "/a.txt", b"hi")

    def test_y(two_node_cluster):     # {"address": "127.0.0.1:port", "nodes": {...}}
        ray.init(address=two_node_cluster["address"])

The S3 server is moto's (`moto[server]`), started in-process on a free loopback port.
Environment it needs, set for the whole session so Ray workers started later inherit it:
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
AWS_EC2_METADATA_DISABLED (no 1 s timeouts probing for an EC2 instance role).
"""
from __future__ import annotations

import logging
import os
import uuid

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_server():
    """Start moto's S3 server on 127.0.0.1; yield its endpoint URL with the env set."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is a test extra")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    srv = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = dict(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    saved = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"]}
    os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        srv.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the moto server, as 's3://name'."""
    import boto3

    name = f"cmr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


NODE_CPUS = 4  # logical CPUs per node of `two_node_cluster`


@pytest.fixture(scope="module")
def two_node_cluster():
    """Two Ray nodes on 127.0.0.1 with different custom resources; yields their address.

    {"address": "127.0.0.1:PORT", "nodes": {"head": node_id, "worker": node_id},
     "logs": the session's log directory (both nodes write there)}.
    Resources: head {"CPU": 4, "head_node": 1}, worker {"CPU": 4, "worker_node": 1}
    (logical CPUs, scheduling slots).  A sweep trial holds 0.1 CPU for its driver and 1
    for its Train worker, and its Ray Data tasks need whole free CPUs besides (a node with
    only 0.9 left runs none of them); 4 a node lets `cmr-ray sweep` run 2 trials at once
    (`sweep.max_concurrent` 0 reserves 2 data CPUs a trial).
    Point `ray.init(address=...)` or `cmr-ray ... --address` at it; the fixture shuts
    Ray down in this process and stops both nodes afterwards.
    """
    from cmr_ray.runtime import local_env

    local_env()
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    loopback = {"node_ip_address": "127.0.0.1", "num_cpus": NODE_CPUS}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**loopback, "resources": {"head_node": 1}, "include_dashboard": False},
    )
    try:
        worker = cluster.add_node(**loopback, resources={"worker_node": 1})
        cluster.wait_for_nodes(timeout=120)  # generous: a busy 2-core machine starts slowly
        yield {
            "address": cluster.address,
            "nodes": {"head": cluster.head_node.node_id, "worker": worker.node_id},
            "logs": cluster.head_node.get_logs_dir_path(),
        }
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
