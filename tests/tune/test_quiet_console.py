"""A sweep's console: one line per trial event (started, each epoch, evaluated, ended), plain
text; warnings, library logs and the trials' own output in files under the run directory."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_experiment

HERE = Path(__file__).parent


@pytest.mark.integration
def test_sweep_console_is_one_line_per_trial_event_and_the_rest_is_in_files(workdir):
    exp = write_experiment(workdir, name="quiet", extra="max_concurrent: 2")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONWARNINGS="always")
    res = subprocess.run([sys.executable, str(HERE / "run_fake_sweep.py"), str(exp)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=workdir)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "\x1b[" not in out                                   # no colour codes off a terminal
    assert "pid=" not in out and "fake train worker" not in out and "fake eval:" not in out
    assert "Warning" not in out and "INFO" not in out            # warnings and library logs: the file
    trial_lines = [x for x in out.splitlines() if re.match(r"\[\d/3\] ", x)]
    for i in (1, 2, 3):
        mine = [x for x in trial_lines if x.startswith(f"[{i}/3] ")]
        assert [x.split(": ", 1)[1].split()[0] for x in mine] == ["started", "epoch", "epoch", "evaluated",
                                                                  "completed"], mine
    (details,) = re.findall(r"details in (\S+)/: sweep\.log", out)
    run_dir = Path(details)
    assert run_dir.parent == workdir / "ray_results" and run_dir.is_dir()
    log = (run_dir / "sweep.log").read_text()
    assert "[1/3]" in log and "sweep finished" in log              # every console line, and more
    trial_logs = sorted(run_dir.glob("trial-*.log"))
    assert len(trial_logs) == 3
    for t in trial_logs:
        text = t.read_text()
        assert "fake eval: scoring epoch" in text and "fake eval: a library warning" in text
    lines = out.splitlines()
    assert len(lines) < 100, out                                  # 3 trials × 5 events, the report's tables, a few more
