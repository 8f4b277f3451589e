"""`cmr-ray ui`: a real MLflow server on 127.0.0.1 only, looked at with headless Chromium.

Needs `chromium` (scripts/test-deps.sh installs it).  Where the browser can be had (CI, root,
or Chromium present) its absence fails the test; for a user who is not root and has no
Chromium it is a skip that names what is missing and how to install it (`browser_or_skip`).
Screenshots are kept under tests/artifacts/ (gitignored)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import ARTIFACTS

pytestmark = pytest.mark.integration


def listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                out.append(addr)
    return out


def test_ui_listens_on_loopback_only(ui_server):
    addrs = listeners(ui_server["port"])
    assert addrs, "nothing listens on the UI port"
    assert set(addrs) == {"0100007F"}, f"UI port bound to {addrs}, expected 127.0.0.1 only"


INSTALL = "sudo apt-get install chromium (or: sudo bash scripts/test-deps.sh)"


def browser_or_skip(which=shutil.which, env=None, euid=None) -> str:
    """The Chromium executable, or: a failure where the browser test is mandatory (CI, or
    root, where scripts/test-deps.sh can install it), a skip naming the command elsewhere."""
    import os

    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    exe = which("chromium") or which("chromium-browser")
    if exe:
        return exe
    if env.get("CI") or euid == 0:
        pytest.fail(f"chromium is not installed (needed where CI or root can install it): {INSTALL}")
    pytest.skip(f"browser test: chromium is not installed and this user is not root; install it with: {INSTALL}")


def chromium(url: str, screenshot: Path | None = None, budget_ms: int = 20000) -> str:
    exe = browser_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1600,1200", f"--virtual-time-budget={budget_ms}"]
        if screenshot is not None:
            subprocess.run(args + [f"--screenshot={screenshot}", url], capture_output=True, timeout=180)
        res = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=180)
    return res.stdout


def _dom_until(url: str, needles: list[str], shot: Path, tries: int = 3) -> str:
    dom = ""
    for i in range(tries):  # the UI renders client-side; a loaded machine may need more virtual time
        dom = chromium(url, shot, budget_ms=20000 * (i + 1))
        if all(n in dom for n in needles):
            break
        time.sleep(2)
    return dom


def test_runs_table_and_compare_view_in_chromium(ui_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port, exp_id = ui_server["port"], ui_server["experiment_id"]
    base = f"http://127.0.0.1:{port}"

    # The runs table nests child runs under their (collapsed) parent; a search filter with a
    # sort by a metric lists them flat, which is how a sweep's trials are compared.
    q = urllib.parse.quote("tags.`cmr.kind` = 'trial'")
    order = urllib.parse.quote("metrics.`test/rsum`")
    shot = ARTIFACTS / "mlflow-ui-runs.png"
    url = f"{base}/#/experiments/{exp_id}/runs?searchFilter={q}&orderByKey={order}&orderByAsc=false"
    dom = _dom_until(url, ["CINE_sax", "LGE_sax", "test/rsum"], shot)
    for name in ui_server["names"]:
        assert name.split(" | ")[0] in dom, f"run {name!r} not on the runs page"
    assert "test/rsum" in dom, "the metric the table is sorted by is not on the runs page"
    assert shot.exists() and shot.stat().st_size > 10_000

    runs = urllib.parse.quote(json.dumps(ui_server["runs"]))
    exps = urllib.parse.quote(json.dumps([exp_id]))
    shot = ARTIFACTS / "mlflow-ui-compare.png"
    dom = _dom_until(f"{base}/#/compare-runs?runs={runs}&experiments={exps}", ["test/rsum", "data.views"], shot)
    assert "Comparing 3 Runs" in dom
    for metric in ("test/rsum", "probe/hcm_auc", "val/rsum"):
        assert metric in dom, f"metric {metric} missing from the compare view"
    assert "data.views" in dom and "cine:sax+2ch+3ch+4ch|lge:sax+2ch+3ch+4ch" in dom
    for param in ("data.frames", "model.temperature"):  # the swept keys a user compares against test/rsum
        assert param in dom, f"parameter {param} missing from the compare view"
    for name in ui_server["names"]:
        assert name in dom.replace("&amp;", "&"), f"run {name!r} not in the compare view"
    assert shot.exists() and shot.stat().st_size > 10_000
