"""The loopback torch backend (cmr_ray.train.loopback): chosen only on a loopback-only Ray,
and while a 2-worker gloo run is in progress every socket it listens on is on 127.0.0.1
(Ray's plain TorchConfig, as a control, is seen listening beyond loopback)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.netutil import is_loopback, listeners_with_owner


def test_the_loopback_config_only_on_a_loopback_cluster(monkeypatch):
    import ray
    from ray.train.torch import TorchConfig

    from cmr_ray.train import loopback

    def nodes(*addrs):
        monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": alive, "NodeManagerAddress": a} for a, alive in addrs])

    nodes(("127.0.0.1", True))
    assert isinstance(loopback.torch_config(), loopback.LoopbackTorchConfig)
    nodes(("127.0.0.1", True), ("10.1.2.3", False))  # a dead node does not count
    cfg = loopback.torch_config(timeout_s=60)
    assert isinstance(cfg, loopback.LoopbackTorchConfig) and cfg.timeout_s == 60
    assert cfg.backend_cls is loopback._LoopbackTorchBackend
    nodes(("127.0.0.1", True), ("10.1.2.3", True))  # a multi-node cluster: Ray's own behaviour
    cfg = loopback.torch_config()
    assert type(cfg) is TorchConfig and cfg.backend_cls is not loopback._LoopbackTorchBackend
    nodes(("192.168.0.7", True))
    assert type(loopback.torch_config()) is TorchConfig
    nodes()
    assert type(loopback.torch_config()) is TorchConfig


def test_the_loopback_interface_has_the_loopback_address():
    import socket

    from cmr_ray.train.loopback import loopback_interface

    name = loopback_interface()
    assert name in {n for _, n in socket.if_nameindex()}
    if Path(f"/sys/class/net/{name}/flags").exists():
        assert int(Path(f"/sys/class/net/{name}/flags").read_text(), 16) & 0x8


def _hold(config):
    """Each rank: an all_reduce over the group, then wait (listening) until the test is done."""
    import torch
    import torch.distributed as dist
    from ray import train

    rank = train.get_context().get_world_rank()
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    d = Path(config["dir"])
    (d / f"ready-{rank}").write_text(f"{t.item()} {dist.get_world_size()} {os.environ['MASTER_PORT']} "
                                     f"{os.environ.get('GLOO_SOCKET_IFNAME', '-')} {os.environ.get('RANK', '-')} "
                                     f"{os.environ.get('LOCAL_RANK', '-')} {os.environ.get('WORLD_SIZE', '-')}")
    deadline = time.time() + 120
    while not (d / "done").exists() and time.time() < deadline:
        time.sleep(0.05)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["loopback", "ray-default"])
def test_a_two_worker_gloo_run_listens_on_loopback_only(ray_cluster, tmp_path, kind):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from cmr_ray.train.loopback import LoopbackTorchConfig, loopback_interface, torch_config

    cfg = torch_config() if kind == "loopback" else TorchConfig()
    assert isinstance(cfg, LoopbackTorchConfig) == (kind == "loopback")  # init_ray: a loopback Ray
    sync = tmp_path / "sync"
    sync.mkdir()
    trainer = TorchTrainer(_hold, train_loop_config={"dir": str(sync)}, torch_config=cfg,
                           scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                           run_config=RunConfig(name=f"lo-{kind}", storage_path=str(tmp_path / "runs")))
    out = {}

    def fit():
        try:
            out["result"] = trainer.fit()
        except Exception as e:  # shown by the assertion below
            out["error"] = e

    th = threading.Thread(target=fit)
    th.start()
    socks: set = set()
    try:
        deadline = time.time() + 180
        while len(list(sync.glob("ready-*"))) < 2 and th.is_alive() and time.time() < deadline:
            time.sleep(0.1)
        assert len(list(sync.glob("ready-*"))) == 2, f"the workers never formed their process group: {out}"
        for _ in range(5):  # all ranks hold the group open now
            socks |= listeners_with_owner(os.getpid())
            time.sleep(0.1)
    finally:
        (sync / "done").write_text("")
        th.join(timeout=120)
    assert "error" not in out and out["result"].error is None, out
    reports = [(sync / f"ready-{r}").read_text().split() for r in range(2)]
    assert all(float(s) == 3.0 and int(n) == 2 for s, n, *_ in reports)  # 1 + 2 over both ranks
    assert [r[4:] for r in reports] == [["0", "0", "2"], ["1", "1", "2"]]  # RANK, LOCAL_RANK, WORLD_SIZE set
    port = int(reports[0][2])
    store = [s for s in socks if s[1] == port]
    assert store, f"the TCPStore port {port} was not among the sampled listeners {sorted(socks)}"
    public = sorted(s for s in socks if not is_loopback(s[0]))
    if kind == "loopback":
        assert not public, f"the run listens beyond loopback: {public}"
        assert all(s[0] == "127.0.0.1" for s in store)
        assert {r[3] for r in reports} == {loopback_interface()}  # gloo's pair sockets on loopback
    else:  # the leak the loopback backend exists for: the check sees it
        assert any(s[1] == port for s in public), f"expected Ray's default store on '::' or 0.0.0.0: {store}"
