"""A bad experiment file stops `cmr-ray sweep` and `cmr-ray train` before any work (issue 8):
exit code not 0, one line on stderr naming the file and the key, and nothing created: no
Ray session (RAY_TMPDIR points into the empty working directory), no store, no mlflow.db,
no ray_results."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("cmr-ray"))

# name -> (yaml text or None for a missing file, the key the error must name, what else it must say)
CASES = {
    "unknown_key": ("data:\n  viewz: 'cine:sax'\n", "data.viewz", "unknown key"),
    "unknown_section": ("trainer:\n  epochs: 2\n", "trainer", "unknown key"),
    "wrong_type": ("train:\n  epochs: three\n", "train.epochs", "expected an integer"),
    "out_of_range": ("model:\n  temperature: -1\n", "model.temperature", "expected a value >="),
    "unknown_view": ("data:\n  views: 'cine:sax+5ch'\n", "data.views", "5ch"),
    "unknown_view_in_trial": ("sweep:\n  trials:\n    - {data.views: 'lge:apex'}\n",
                              "sweep.trials[0].data.views", "apex"),
    "missing_base": ("base: no-such-base.yaml\n", "base", "no-such-base.yaml"),
    "missing_file": (None, "", "cannot read file"),
    # issue 16, item 7: each of these passed validation and failed after a trial had trained
    # (the metric: the last checkpoint evaluated instead of the best, no model registered)
    "metric_typo": ("sweep:\n  metric: val/rsun\n", "sweep.metric", "val/rsum"),
    "unknown_probe": ("eval:\n  probes: [hcm, lvnc]\n", "eval.probes", "expected a list of"),
    "unknown_baseline": ("eval:\n  baselines: [zeroshot, moco]\n", "eval.baselines", "simclr"),
    "bad_few_shot": ("eval:\n  few_shot: [0, 4]\n", "eval.few_shot", "whole numbers >= 1"),
    "bad_mode": ("sweep:\n  scheduler: asha\n  mode: highest\n", "sweep.mode", "one of auto, max, min"),
}


TRAIN_CASES = ("unknown_key", "wrong_type", "unknown_view", "missing_file", "metric_typo", "unknown_probe")
RUNS = [("sweep", c) for c in sorted(CASES)] + [("train", c) for c in TRAIN_CASES]
# the same through a real `cmr-ray` process (slow: one per command)
SUBPROCESS_RUNS = [("sweep", "unknown_view_in_trial"), ("train", "wrong_type")]


def _write(tmp_path, case):
    text, key, what = CASES[case]
    exp = tmp_path / f"{case}.yaml"
    if text is not None:
        exp.write_text(text)
    return exp, key, what


def _check(tmp_path, exp, key, what, rc, stdout, stderr):
    assert rc != 0, stdout + stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert exp.name in line and what in line, line
    if key:
        assert f"'{key}'" in line, line
    assert "Traceback" not in stdout + stderr
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ([exp.name] if exp.exists() else []), f"work started before the config was checked: {left}"


@pytest.mark.parametrize("command,case", RUNS)
def test_bad_config_fails_before_any_work(tmp_path, monkeypatch, command, case):
    from click.testing import CliRunner

    from cmr_ray.cli import main

    exp, key, what = _write(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))  # a Ray session would show up here
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = CliRunner().invoke(main, [command, exp.name])
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    _check(tmp_path, exp, key, what, res.exit_code, res.stdout, res.stderr)
    if "ray" in sys.modules:
        import ray

        assert not ray.is_initialized(), "Ray was started for a bad config"


@pytest.mark.parametrize("command,case", SUBPROCESS_RUNS)
def test_bad_config_fails_before_any_work_in_a_real_process(tmp_path, command, case):
    exp, key, what = _write(tmp_path, case)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["RAY_TMPDIR"] = str(tmp_path / "ray-tmp")
    res = subprocess.run([CLI, command, exp.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    _check(tmp_path, exp, key, what, res.returncode, res.stdout, res.stderr)


@pytest.mark.parametrize("argv", [["sweep"], ["train"], ["validate"], ["report"], ["prepare", "dicom", "--reports", "r.csv",
                                                                                   "--out", "store", "--config"]])
def test_a_config_error_exits_2_in_every_command(tmp_path, monkeypatch, argv):
    """One convention (cmr_ray.cli): bad input refused before any work exits 2, whatever the command."""
    from click.testing import CliRunner

    from cmr_ray.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dicom").mkdir()
    (tmp_path / "r.csv").write_text("study_id,report\n")
    exp = tmp_path / "bad.yaml"
    exp.write_text("train:\n  epochs: many\n")
    res = CliRunner().invoke(main, [*argv, exp.name])
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "bad.yaml" in res.stderr and "train.epochs" in res.stderr, res.stderr
