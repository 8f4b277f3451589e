"""cmr_ray.train.loopback uses no private Ray: its imports are public/DeveloperAPI, the one
check of the Ray surface it relies on (`_require_ray_api`, and the import guard) fails with
one line naming the tested Ray, and rank 0's two setup calls are checked to share a process."""
from __future__ import annotations

import ast
import importlib.util
import os
import socket
from pathlib import Path

import pytest

from cmr_ray.train import loopback

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "cmr_ray" / "train" / "loopback.py"


def _one_line(msg: str) -> None:
    assert "\n" not in msg
    assert f"tested with Ray {loopback.TESTED_RAY}.x" in msg
    assert "pyproject.toml" in msg and "--address" in msg


def test_no_private_ray_import_or_attribute():
    tree = ast.parse(SRC.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            assert not any(p.startswith("_") for p in node.module.split(".")), node.module
            assert not any(a.name.startswith("_") for a in node.names), [a.name for a in node.names]
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "ray" and "._" in a.name for a in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ray":
            assert not node.attr.startswith("_"), f"ray.{node.attr}"


class _Group:
    """A worker group as Ray hands it to Backend.on_start, less `without`."""

    def __init__(self, without=()):
        for m in loopback.WORKER_GROUP_API:
            if m not in without and m != "__len__":
                setattr(self, m, lambda *a, **k: pytest.fail("called before the API check"))
        self._len = "__len__" not in without

    def __getattr__(self, name):
        if name == "__len__" and self._len:
            return lambda: 2
        raise AttributeError(name)


@pytest.mark.parametrize("gone", ["execute_single_async", "get_resources_per_worker"])
def test_a_ray_without_the_worker_group_api_fails_with_one_line(gone):
    with pytest.raises(RuntimeError) as e:
        loopback._LoopbackTorchBackend().on_start(_Group(without=(gone,)), loopback.LoopbackTorchConfig())
    _one_line(str(e.value))
    assert gone in str(e.value) and "_Group" in str(e.value)
    loopback._require_ray_api(_Group())  # the full surface passes


def test_a_ray_without_the_backend_class_fails_on_import_with_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray.train.backend", None)  # import -> ImportError
    spec = importlib.util.spec_from_file_location("_loopback_copy", SRC)
    with pytest.raises(ImportError) as e:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    _one_line(str(e.value))
    assert "ray.train.backend" in str(e.value)


def test_rank0_hands_its_socket_over_in_the_same_process_only(monkeypatch):
    port, pid = loopback._open_listen_socket()
    assert pid == os.getpid()
    fd = loopback._take_listen_fd(port, pid)
    try:
        s = socket.socket(fileno=os.dup(fd))
        assert s.getsockname() == ("127.0.0.1", port)
        s.close()
    finally:
        os.close(fd)
    with pytest.raises(RuntimeError, match="no socket is held here"):  # second take / another process
        loopback._take_listen_fd(port, pid)

    port, pid = loopback._open_listen_socket()
    with pytest.raises(RuntimeError, match=rf"process {pid + 1} but sets up .* in process {pid}"):
        loopback._take_listen_fd(port, pid + 1)  # bound elsewhere: Ray ran the calls in two processes
    assert loopback._listen is None  # the stale fd is closed, not kept

    port, pid = loopback._open_listen_socket()
    monkeypatch.setattr(os, "getpid", lambda: pid + 7)  # e.g. a forked copy of the worker
    with pytest.raises(RuntimeError, match=f"holds one for port {port} from process {pid}") as e:
        loopback._take_listen_fd(port, pid)
    assert "\n" not in str(e.value) and "same Ray worker process" in str(e.value)
    monkeypatch.undo()
    loopback._close_held()
    assert loopback._listen is None


def test_rank0_setup_refuses_a_socket_from_another_process():
    port, pid = loopback._open_listen_socket()
    try:
        with pytest.raises(RuntimeError, match="same Ray worker process"):
            loopback._setup_process_group("gloo", 0, 2, port, 5, rank0_pid=pid + 1)
    finally:
        loopback._close_held()


def test_pyproject_pins_ray_to_the_tested_minor():
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray_dep,) = [d for d in deps if d.startswith("ray[") or d.startswith("ray>") or d == "ray"]
    major, minor = loopback.TESTED_RAY.split(".")
    assert f">={loopback.TESTED_RAY}" in ray_dep and f"<{major}.{int(minor) + 1}" in ray_dep, ray_dep
