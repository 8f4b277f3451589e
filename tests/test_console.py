"""cmr_ray.console: progress lines, the run log that keeps warnings, library logs and Ray's
worker lines off the console, and a process's output sent to a file."""
from __future__ import annotations

import logging
import subprocess
import sys
import warnings

from cmr_ray import console


def test_progress_off_a_terminal_prints_one_line_per_tenth(capsys):
    for i in range(1, 101):
        console.print_progress(i, 100, "files indexed")
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "files indexed: 100/100" and 10 <= len(err) <= 11 and "\r" not in "".join(err)


def test_run_log_keeps_the_console_to_our_lines(tmp_path, capsys):
    path = tmp_path / "run" / "sweep.log"
    mlflow_logger = logging.getLogger("mlflow")
    before = (list(mlflow_logger.handlers), mlflow_logger.propagate)
    with console.RunLog(path):
        print("[1/3] CINE_sax: epoch 1")
        print("\x1b[36m(run_trial pid=123)\x1b[0m embed test: 10/20 studies")
        print("\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started")
        sys.stderr.write("partial ")
        sys.stderr.write("line\n")
        warnings.warn("a library warning", DeprecationWarning)
        logging.getLogger("mlflow.store").warning("Creating initial MLflow database tables")
        logging.getLogger("somebody.else").info("an info record")
    out = capsys.readouterr()
    assert out.out == "[1/3] CINE_sax: epoch 1\n" and out.err == "partial line\n"
    log = path.read_text()
    for text in ("[1/3] CINE_sax: epoch 1", "(run_trial pid=123) embed test: 10/20 studies", "(raylet) WARNING",
                 "partial line", "DeprecationWarning: a library warning", "Creating initial MLflow", "an info record"):
        assert text in log, text
    assert "\x1b[" not in log
    # everything is as it was afterwards
    assert not isinstance(sys.stdout, console._Filtered)
    assert (list(mlflow_logger.handlers), mlflow_logger.propagate) == before
    print("after")
    assert capsys.readouterr().out == "after\n" and "after" not in path.read_text()


def test_redirect_process_output_takes_file_descriptors_too(tmp_path):
    log = tmp_path / "trial.log"
    code = ("import os, sys; from cmr_ray.console import redirect_process_output; print('before', flush=True); "
            f"redirect_process_output({str(log)!r}); print('python'); sys.stderr.write('err\\n'); "
            "os.system('echo from a child'); os.write(2, b'fd two\\n')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == "before\n" and res.stderr == ""
    # (Python's stdout into a file is block-buffered: "python" may come last)
    assert sorted(log.read_text().split()) == sorted(["python", "err", "from", "a", "child", "fd", "two"])
