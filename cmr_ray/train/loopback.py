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

Why not a setting: neither has one.  Ray's `TorchConfig` takes only backend, init_method
("env"/"tcp": a URL, never a store) and timeout_s; torch's env:// and tcp:// rendezvous
build the TCPStore from MASTER_ADDR/MASTER_PORT (+ TORCHELASTIC_USE_AGENT_STORE, which only
makes every rank a client), and the TCPStore server always binds all interfaces unless it
is given `master_listen_fd`.  So this module brings its own backend, written against Ray's
public and DeveloperAPI surface only (`TorchConfig`, `ray.train.backend.Backend`,
`ray.train.get_context`, `ray.train.torch.get_device`) plus the methods of the worker group
Ray hands to `Backend.on_start`.  `_require_ray_api` is the one place that checks that
surface; on a Ray that lacks it, it fails with one line naming `TESTED_RAY`.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta

import ray

TESTED_RAY = "2.60"  # the Ray minor this backend was tested on; pyproject.toml pins ray to it

# what `on_start`/`on_shutdown` call on the worker group Ray passes them (Ray's own
# `_TorchBackend` calls the same; the group's class itself is Ray-internal, never imported)
WORKER_GROUP_API = ("execute", "execute_async", "execute_single", "execute_single_async",
                    "get_resources_per_worker", "__len__")


def _incompatible(what: str) -> str:
    """The one line every Ray-version mismatch of this module fails with."""
    return (f"cmr_ray.train.loopback was tested with Ray {TESTED_RAY}.x, this is Ray "
            f"{getattr(ray, '__version__', '?')}: {what}; install the ray that pyproject.toml pins, "
            "or run on a cluster with routable node addresses (--address / RAY_ADDRESS), where "
            "Ray's own TorchConfig is used")


try:
    from ray.exceptions import GetTimeoutError  # PublicAPI
    from ray.train.backend import Backend  # DeveloperAPI
    from ray.train.torch import TorchConfig  # PublicAPI(stable)
except ImportError as e:  # pragma: no cover - exercised by a test on a module copy
    raise ImportError(_incompatible(f"cannot import {e.name or e}")) from None

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
# rank 0's bound socket between `_open_listen_socket` and `_setup_process_group`, as
# (pid, port, fd): both are separate remote calls, so the second checks it runs in the
# process that bound the socket (a Ray worker actor is one process; a restart is not)
_listen: tuple[int, int, int] | None = None


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


def _require_ray_api(worker_group) -> None:
    """The one check of the Ray surface this backend uses beyond public imports."""
    missing = [m for m in WORKER_GROUP_API if not callable(getattr(worker_group, m, None))]
    if missing:
        raise RuntimeError(_incompatible(f"the worker group Ray passes to Backend.on_start "
                                         f"({type(worker_group).__name__}) has no {', '.join(missing)}"))


def _close_held() -> None:
    global _listen
    held, _listen = _listen, None
    if held is not None:
        try:
            os.close(held[2])
        except OSError:
            pass


def _open_listen_socket() -> tuple[int, int]:
    """Rank 0: bind and listen on 127.0.0.1 (a free port); the fd waits for the TCPStore.
    Returns (port, pid of this process)."""
    global _listen
    _close_held()  # a socket left by an earlier attempt that never reached its store
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    s.listen(128)
    port = s.getsockname()[1]
    _listen = (os.getpid(), port, s.detach())  # the TCPStore server takes the fd over (and closes it)
    return port, os.getpid()


def _take_listen_fd(port: int, pid: int) -> int:
    """Rank 0's second call: the fd `_open_listen_socket` bound to `port` in process `pid`,
    which must be this process; otherwise one clear error (and no stale fd kept)."""
    global _listen
    held = _listen
    if held is not None and held[0] == os.getpid() == pid and held[1] == port:
        _listen = None
        return held[2]
    where = ("no socket is held here" if held is None else
             f"this process holds one for port {held[1]} from process {held[0]}")
    if held is not None and held[0] == os.getpid():
        _close_held()
    raise RuntimeError(f"loopback process group: rank 0 bound its store socket (port {port}) in process "
                       f"{pid} but sets up its process group in process {os.getpid()} ({where}); both "
                       "steps must run in the same Ray worker process (was the worker restarted?)")


def _loopback_env(port: int) -> None:
    os.environ.update(MASTER_ADDR=HOST, MASTER_PORT=str(port))
    iface = loopback_interface()
    os.environ["GLOO_SOCKET_IFNAME"] = iface  # gloo's pair sockets: this interface's address
    os.environ["NCCL_SOCKET_IFNAME"] = iface  # NCCL's bootstrap sockets likewise


def _setup_process_group(backend: str, world_rank: int, world_size: int, port: int, timeout_s: int,
                         rank0_pid: int) -> None:
    """Every rank: join (rank 0: serve, on the pre-bound socket) the store; init the group."""
    import torch.distributed as dist

    rank, timeout = world_rank, timedelta(seconds=timeout_s)
    if rank == 0:
        fd = _take_listen_fd(port, rank0_pid)
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


def _set_rank_env() -> None:
    """LOCAL_RANK, RANK, WORLD_SIZE ... as torchrun sets them (and Ray's own backend), from the
    public train context."""
    from ray import train
    from ray.train.torch import get_device

    ctx = train.get_context()
    os.environ.update(LOCAL_RANK=str(ctx.get_local_rank()), LOCAL_WORLD_SIZE=str(ctx.get_local_world_size()),
                      NODE_RANK=str(ctx.get_node_rank()), RANK=str(ctx.get_world_rank()),
                      WORLD_SIZE=str(ctx.get_world_size()), ACCELERATE_TORCH_DEVICE=str(get_device()))


def _shutdown_process_group(destroy: bool) -> None:
    import torch
    import torch.distributed as dist

    if destroy and dist.is_initialized():
        dist.destroy_process_group()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _LoopbackTorchBackend(Backend):
    share_cuda_visible_devices = True  # as Ray's torch backend

    def on_start(self, worker_group, backend_config: LoopbackTorchConfig):
        _require_ray_api(worker_group)
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
        port, pid = worker_group.execute_single(0, _open_listen_socket)
        worker_group.execute(_loopback_env, port=port)
        n = len(worker_group)
        ray.get([worker_group.execute_single_async(i, _setup_process_group, backend=backend, world_rank=i,
                                                   world_size=n, port=port, timeout_s=backend_config.timeout_s,
                                                   rank0_pid=pid)
                 for i in range(n)])

    def on_training_start(self, worker_group, backend_config):
        # Ray calls this with the train context up (Train V1 and V2 alike; V2 right after on_start)
        worker_group.execute(_set_rank_env)

    def on_shutdown(self, worker_group, backend_config):
        refs = worker_group.execute_async(_shutdown_process_group, destroy=len(worker_group) > 1)
        timeout_s = float(os.environ.get("TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S", 30))  # Ray's knob, its default
        try:
            ray.get(refs, timeout=timeout_s)
        except GetTimeoutError:
            log.warning("torch process group shutdown timed out after %s seconds", timeout_s)
