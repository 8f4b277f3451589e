"""The local Ray that cmr-ray starts by itself listens on 127.0.0.1 only, its dashboard
included, and says where the dashboard is.

Each integration check runs in a fresh Python whose environment lacks
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (Ray's bind policy), so only `cmr_ray.runtime` can make it
loopback-only: without the code's setting these tests fail (Ray then listens on the
machine's routable address).  Every listening socket (TCP LISTEN, bound UDP) of every
process under the driver is checked, and every port Ray says it opened (GCS, raylet,
object manager, metrics export, metrics agent, dashboard agent, runtime-env agent,
dashboard) must be among them: a Ray process outside the tree could not slip by.
"""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.netutil import is_loopback

REPO = Path(__file__).resolve().parents[1]
BIND_POLICY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
PROBE = """
import json, os, sys, urllib.request
if sys.argv[1] == "ray-imported-first":
    import ray  # Ray reads its bind policy here, before cmr_ray.runtime runs
from cmr_ray.runtime import dashboard_url, init_ray
from tests.netutil import listening_sockets_of_tree, listeners_on_ports
ray = init_ray(num_cpus=1)
try:
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
    (node,) = ray.nodes()
    declared = {k: node[k] for k in ("NodeManagerPort", "ObjectManagerPort", "MetricsExportPort",
                                     "MetricsAgentPort", "DashboardAgentListenPort", "RuntimeEnvAgentPort")}
    declared["GcsPort"] = int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
    url = dashboard_url()
    version = None
    if url:
        declared["DashboardPort"] = int(url.rsplit(":", 1)[1])
        with urllib.request.urlopen(url + "/api/version", timeout=30) as r:  # the test's own client
            version = json.loads(r.read())
    print("PROBE " + json.dumps({"sockets": listening_sockets_of_tree(os.getpid()), "declared": declared,
                                 "machine": sorted(listeners_on_ports(declared.values())),
                                 "url": url, "version": version}), flush=True)
finally:
    ray.shutdown()
"""


def probe_a_fresh_local_ray(mode: str, **env_extra) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in (BIND_POLICY, "RAY_ADDRESS", "CMR_RAY_DASHBOARD")}
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("PROBE "):]), proc.stderr


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["fresh", "ray-imported-first", "no-dashboard"])
def test_local_ray_binds_loopback_only(mode):
    out, stderr = probe_a_fresh_local_ray(mode, **({"CMR_RAY_DASHBOARD": "0"} if mode == "no-dashboard" else {}))
    socks = [tuple(s) for s in out["sockets"]]
    assert socks, "found no listening sockets of the Ray processes"
    public = [(ip, port) for ip, port in socks if not is_loopback(ip)]
    assert not public, f"Ray listens beyond loopback: {public}"
    # every port Ray declares is held by a process of the tree, and nowhere on the machine beyond loopback
    ports = {port for _, port in socks}
    declared = out["declared"]
    # -1: a port Ray left closed (the dashboard agent's HTTP port when its fixed default, 52365, is
    # taken by another Ray on the machine; metrics export without the dashboard)
    core = ("GcsPort", "NodeManagerPort", "ObjectManagerPort", "MetricsAgentPort", "RuntimeEnvAgentPort")
    assert all(declared[k] > 0 for k in core), declared
    missing = {name: p for name, p in declared.items() if p > 0 and p not in ports}
    assert not missing, f"ports Ray declares but no process of the driver's tree listens on: {missing}"
    elsewhere = [(ip, port) for ip, port in out["machine"] if not is_loopback(ip)]
    assert not elsewhere, f"Ray's ports are open beyond loopback on this machine: {elsewhere}"
    if mode == "no-dashboard":
        assert out["url"] is None and "Ray dashboard:" not in stderr
    else:  # the dashboard: on loopback, named on stderr, and it answers
        assert out["url"].startswith("http://127.0.0.1:"), out["url"]
        assert f"Ray dashboard: {out['url']}" in stderr, stderr[-2000:]
        assert out["version"]["ray_version"] == __import__("ray").__version__


# ---------------------------------------------------------------- no cluster: what init_ray asks Ray for

class FakeContext:
    dashboard_url = "127.0.0.1:8265"


@pytest.fixture
def fake_init(monkeypatch):
    """ray.init replaced by a recorder (no Ray started); init_ray's calls are in the list."""
    import ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: bool(calls))

    def init(**kw):
        calls.append({**kw, "env:RAY_API_SERVER_ADDRESS": os.environ.get("RAY_API_SERVER_ADDRESS")})
        return FakeContext() if kw.get("include_dashboard") or kw.get("address") != "local" else type(
            "NoDash", (), {"dashboard_url": None})()

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv("CMR_RAY_DASHBOARD", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_a_local_ray_gets_the_dashboard_on_loopback_and_its_url_is_said(fake_init, monkeypatch):
    from cmr_ray import runtime

    monkeypatch.setattr(runtime, "_free_port", lambda preferred: 8265)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://elsewhere:8265")
    said = []
    runtime.init_ray(num_cpus=2, echo=said.append)
    (kw,) = fake_init
    assert kw["address"] == "local" and kw["include_dashboard"] is True and kw["dashboard_host"] == "127.0.0.1"
    assert kw["dashboard_port"] == 8265
    assert said == ["Ray dashboard: http://127.0.0.1:8265"]
    assert runtime.dashboard_url() == "http://127.0.0.1:8265"
    # Ray's processes, started inside ray.init, inherit where the state API is: no guessing among
    # the machine's Rays; the driver's environment is left as it was
    assert kw["env:RAY_API_SERVER_ADDRESS"] == "http://127.0.0.1:8265"
    assert os.environ["RAY_API_SERVER_ADDRESS"] == "http://elsewhere:8265"


def test_the_dashboard_port_is_8265_unless_taken():
    import socket

    from cmr_ray.runtime import _free_port

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        other = _free_port(taken)
        assert other != taken and other > 0
    with socket.socket() as s:  # what it returned is free
        s.bind(("127.0.0.1", other))


@pytest.mark.parametrize("how", ["env", "argument"])
def test_the_switch_turns_the_dashboard_off(fake_init, monkeypatch, how):
    from cmr_ray import runtime

    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265")
    said = []
    if how == "env":
        monkeypatch.setenv("CMR_RAY_DASHBOARD", "0")
        runtime.init_ray(echo=said.append)
    else:
        runtime.init_ray(dashboard=False, echo=said.append)
    (kw,) = fake_init
    assert kw["include_dashboard"] is False and "dashboard_host" not in kw and "dashboard_port" not in kw
    assert said == [] and runtime.dashboard_url() is None
    assert kw["env:RAY_API_SERVER_ADDRESS"] is None  # withheld from Ray's processes: not this Ray's
    assert os.environ["RAY_API_SERVER_ADDRESS"] == "http://127.0.0.1:8265"


def test_without_the_dashboards_packages_ray_starts_without_it_and_says_why(fake_init, monkeypatch):
    from cmr_ray import runtime

    monkeypatch.setattr(runtime, "_dashboard_missing", lambda: "its packages are missing: No module named 'aiohttp_cors'")
    said = []
    runtime.init_ray(echo=said.append)
    assert fake_init[0]["include_dashboard"] is False
    assert len(said) == 1 and "aiohttp_cors" in said[0] and "ray[default]" in said[0], said


def test_the_dashboards_packages_are_installed():
    from cmr_ray import runtime

    assert runtime._dashboard_missing() is None  # pyproject's ray[default]


def test_joining_a_cluster_names_its_dashboard_and_asks_for_none(fake_init):
    from cmr_ray import runtime

    said = []
    runtime.init_ray(address="127.0.0.1:6379", echo=said.append)
    (kw,) = fake_init
    assert kw["address"] == "127.0.0.1:6379" and "include_dashboard" not in kw and "dashboard_host" not in kw
    assert "dashboard_port" not in kw
    assert said == ["Ray dashboard: http://127.0.0.1:8265 (the cluster's)"]


@pytest.mark.parametrize("value,expected", [("", True), ("1", True), ("on", True), ("TRUE", True),
                                            ("0", False), ("off", False), (" no ", False), ("false", False)])
def test_dashboard_switch_values(monkeypatch, value, expected):
    from cmr_ray.runtime import dashboard_wanted

    monkeypatch.setenv("CMR_RAY_DASHBOARD", value)
    assert dashboard_wanted() is expected
    assert dashboard_wanted(True) is True and dashboard_wanted(False) is False  # the argument wins


def test_a_bad_switch_value_names_the_variable(monkeypatch):
    from cmr_ray.runtime import dashboard_wanted

    monkeypatch.setenv("CMR_RAY_DASHBOARD", "maybe")
    with pytest.raises(ValueError, match=r"CMR_RAY_DASHBOARD='maybe'"):
        dashboard_wanted()


@pytest.mark.parametrize("command", ["prepare", "train", "sweep"])
def test_the_commands_that_start_ray_take_no_dashboard(monkeypatch, command, tmp_path):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    monkeypatch.setenv("CMR_RAY_DASHBOARD", "1")
    res = CliRunner().invoke(main, [command, "--help"])
    assert "--no-dashboard" in res.output
    # the flag sets the switch init_ray reads (the command then fails on its missing input, before Ray)
    args = {"prepare": [str(tmp_path), "--out", str(tmp_path / "s")], "train": [str(tmp_path / "no.yaml")],
            "sweep": [str(tmp_path / "no.yaml")]}[command]
    CliRunner().invoke(main, [command, *args, "--no-dashboard"])
    assert os.environ["CMR_RAY_DASHBOARD"] == "0"
    monkeypatch.setenv("CMR_RAY_DASHBOARD", "maybe")
    res = CliRunner().invoke(main, [command, *args])
    assert res.exit_code == 2 and "CMR_RAY_DASHBOARD='maybe'" in res.output, res.output
