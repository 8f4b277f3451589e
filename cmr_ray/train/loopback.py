"""The torch process group of a run on a loopback-only local Ray listens on 127.0.0.1 only.

    from cmr_ray.train.loopback import torch_config
    TorchTrainer(loop, torch_config=torch_config(), ...)   # after ray.init / init_ray

Ray Train's own `TorchConfig` sets MASTER_ADDR/MASTER_PORT and calls
`init_process_group("env://")`; rank 0's TCPStore server then binds `::` (all interfaces)
whatever MASTER_ADDR says, and gloo's pair sockets bind the address the machine's hostname
resolves to.  When every alive Ray node is on a loopback address (the Ray `init_ray` starts
by itself), `torch_config()` returns `LoopbackTorchConfig`: rank 0 binds a socket to
127.0.0.1 itself and hands it to its TCPStore (`master_listen_fd`), every rank joins that
store and `init_process_group(store=...)`, and gloo/NCCL are told to use the loopback
interface (GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME).  On any other cluster (a node with a
routable address: `--address`, RAY_ADDRESS) it returns Ray's plain `TorchConfig`.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train.torch import TorchConfig
from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
from ray.train.torch.config import _TorchBackend, _set_torch_distributed_env_vars

HOST = "127.0.0.1"
_listen_fd: int | None = None  # rank 0's bound socket, between the two setup steps (worker side)


def _is_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def cluster_is_loopback() -> bool:
    """True when every alive node of the connected Ray has a loopback address."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return bool(nodes) and all(_is_loopback(n.get("NodeManagerAddress", "")) for n in nodes)


def torch_config(**kw) -> TorchConfig:
    """`LoopbackTorchConfig(**kw)` on a loopback-only Ray, else Ray's `TorchConfig(**kw)`."""
    return LoopbackTorchConfig(**kw) if cluster_is_loopback() else TorchConfig(**kw)


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """`TorchConfig` whose process group (store and gloo/NCCL sockets) stays on 127.0.0.1."""

    @property
    def backend_cls(self):
        return _LoopbackTorchBackend


def loopback_interface() -> str:
    """Name of this machine's loopback network interface ('lo' on Linux, 'lo0' on macOS)."""
    names = [n for _, n in socket.if_nameindex()]
    if sys.platform.startswith("linux"):
        for n in names:
            try:
                if int(open(f"/sys/class/net/{n}/flags").read(), 16) & 0x8:  # IFF_LOOPBACK
                    return n
            except (OSError, ValueError):
                continue
    for n in ("lo", "lo0"):
        if n in names:
            return n
    raise RuntimeError(f"no loopback network interface among {names}; cannot keep the torch "
                       "process group on 127.0.0.1")


def _open_listen_socket() -> int:
    """Rank 0: bind and listen on 127.0.0.1 (a free port); the fd waits for the TCPStore."""
    global _listen_fd
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    s.listen(128)
    port = s.getsockname()[1]
    _listen_fd = s.detach()  # the TCPStore server takes the fd over (and closes it)
    return port


def _loopback_env(port: int) -> None:
    os.environ.update(MASTER_ADDR=HOST, MASTER_PORT=str(port))
    iface = loopback_interface()
    os.environ["GLOO_SOCKET_IFNAME"] = iface  # gloo's pair sockets: this interface's address
    os.environ["NCCL_SOCKET_IFNAME"] = iface  # NCCL's bootstrap sockets likewise


def _setup_process_group(backend: str, world_rank: int, world_size: int, port: int, timeout_s: int) -> None:
    """Every rank: join (rank 0: serve, on the pre-bound socket) the store; init the group."""
    import torch.distributed as dist

    global _listen_fd
    rank, timeout = world_rank, timedelta(seconds=timeout_s)
    if rank == 0:
        fd, _listen_fd = _listen_fd, None
        if fd is None:
            raise RuntimeError("loopback process group: rank 0 has no bound store socket")
        try:
            store = dist.TCPStore(HOST, port, world_size, True, timeout, master_listen_fd=fd)
        except Exception:
            os.close(fd)
            raise
    else:
        store = dist.TCPStore(HOST, port, world_size, False, timeout)
    if "nccl" in backend and "TORCH_NCCL_BLOCKING_WAIT" not in os.environ:
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # as Ray's own setup does
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: LoopbackTorchConfig):
        backend = backend_config.backend
        if backend is None:
            gpus = worker_group.get_resources_per_worker().get("GPU", 0)
            backend = "nccl" if gpus > 0 else "gloo"
        if backend not in ("gloo", "nccl", "cpu:gloo,cuda:nccl"):
            raise ValueError(f"LoopbackTorchConfig: backend {backend!r} is not supported (gloo or nccl)")
        addrs = set(worker_group.execute(ray.util.get_node_ip_address))
        if not all(_is_loopback(a) for a in addrs):
            raise RuntimeError(f"LoopbackTorchConfig: workers on non-loopback addresses {sorted(addrs)}; "
                               "use ray.train.torch.TorchConfig on a multi-node cluster")
        port = worker_group.execute_single(0, _open_listen_socket)
        worker_group.execute(_loopback_env, port=port)
        if not isinstance(worker_group, V1WorkerGroup):  # V1 sets them in on_training_start
            worker_group.execute(_set_torch_distributed_env_vars)  # LOCAL_RANK, RANK, WORLD_SIZE ...
        n = len(worker_group)
        ray.get([worker_group.execute_single_async(i, _setup_process_group, backend=backend, world_rank=i,
                                                   world_size=n, port=port, timeout_s=backend_config.timeout_s)
                 for i in range(n)])
