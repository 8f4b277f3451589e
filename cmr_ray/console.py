"""What a command prints, and where the rest goes (no Ray, torch or MLflow here).

    from cmr_ray.console import print_progress, RunLog
    print_progress(120, 500, "files indexed")        # in place on a terminal; tenths in a log
    with RunLog("ray_results/sweep-views-20261206-041700/sweep.log"):
        print("[1/10] CINE_sax | 8 frames: epoch 3")  # on the console and in the file
        ...                                           # warnings, library logs, Ray's worker lines: the file only

A long command (a sweep) prints one line per event a user follows: a trial started, one
line per trial per epoch, a trial evaluated and ended.  Everything else, Python warnings
and the log records of Ray, MLflow and the other libraries, goes to the run's log file,
whose path the command prints first.  A trial's own output (evaluation progress, its
Train run's lines) goes to its own file beside it (`redirect_process_output`).  Nothing
here writes colour codes: lines are plain text, on a terminal or not.
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path

# Loggers whose records a quiet command sends to its log file instead of the console.
LIBRARY_LOGGERS = ("ray", "mlflow", "alembic", "py.warnings", "filelock", "urllib3", "fsspec", "torch",
                   "transformers", "sentence_transformers", "pyarrow", "botocore", "asyncio")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_LAST_TENTH: dict[str, int] = {}


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def print_progress(done: int, total: int, what: str, detail: str = "") -> None:
    """'files indexed: 120/500' on stderr: one line rewritten in place on a terminal; in a log
    (not a terminal) one line per tenth of the work, so the file stays readable."""
    text = f"{what}: {done}/{total}" + (f", {detail}" if detail else "")
    if is_terminal(sys.stderr):
        print(f"\r{text}", end="" if done < total else "\n", file=sys.stderr, flush=True)
        return
    tenth = done * 10 // max(total, 1)
    if done >= total or tenth != _LAST_TENTH.get(what):
        _LAST_TENTH[what] = tenth
        print(text, file=sys.stderr, flush=True)


# Lines Ray prints on a driver for other processes: "(raylet) WARNING: ...",
# "(run_trial pid=123) ...", "(RayTrainWorker pid=9, ip=...) ..." (log_to_driver, and the
# raylet's messages, which Ray prints even without it).
RAY_PREFIXED = re.compile(r"^\((raylet|autoscaler|[\w.]+ pid=[^)]*)\)")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Filtered(io.TextIOBase):
    """A console stream during a RunLog: every line to the log file; Ray's lines for other
    processes to the file only; colour codes removed unless the console is a terminal."""

    def __init__(self, console, log: RunLog):
        self.console, self.log = console, log
        self.terminal = is_terminal(console)
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if "\n" not in text and self.terminal and not self._partial:
            self.console.write(text)  # a progress line rewritten in place on a terminal
            return len(text)
        text, self._partial = self._partial + text, ""
        *lines, self._partial = text.split("\n")
        for line in lines:
            plain = ANSI.sub("", line).lstrip("\r")
            self.log.write(plain)
            if not RAY_PREFIXED.match(plain):
                self.console.write((line if self.terminal else plain) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.write("\n")
        self.console.flush()

    def isatty(self) -> bool:
        return self.terminal

    def fileno(self) -> int:
        return self.console.fileno()

    @property
    def encoding(self):
        return getattr(self.console, "encoding", "utf-8")


class RunLog:
    """A run's log file.  While open: every line printed on stdout/stderr is also in the file;
    Ray's lines for other processes ("(raylet) ...", "(run_trial pid=...) ...") and Python
    warnings and the records of `LIBRARY_LOGGERS` (and of any logger reaching the root
    logger) are in the file only; colour codes are dropped off a terminal.  Leaving
    restores the streams and every logger as they were."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None
        self._handler: logging.Handler | None = None
        self._saved: dict[str, tuple] = {}
        self._root_saved: tuple | None = None
        self._warnings_saved = None
        self._streams = None

    def __enter__(self) -> RunLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")
        self._handler = logging.StreamHandler(self._file)
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._handler.setLevel(logging.INFO)
        root = logging.getLogger()
        self._root_saved = (list(root.handlers), root.level)
        root.handlers = [self._handler]
        root.setLevel(min(root.level or logging.WARNING, logging.INFO))
        logging.captureWarnings(True)
        self._warnings_saved = warnings.showwarning
        warnings.showwarning = self._warning
        self.reroute()
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _Filtered(sys.stdout, self), _Filtered(sys.stderr, self)
        return self

    def _warning(self, message, category, filename, lineno, file=None, line=None):
        self.write(f"{category.__name__}: {message} ({filename}:{lineno})")

    def reroute(self) -> None:
        """Send the library loggers' records to the file only.  Call again after something
        (such as `ray.init`) has given a library logger a console handler of its own."""
        for name in LIBRARY_LOGGERS:
            lg = logging.getLogger(name)
            if name not in self._saved:
                self._saved[name] = (list(lg.handlers), lg.propagate)
            lg.handlers = [self._handler]
            lg.propagate = False

    def write(self, line: str) -> None:
        if self._file is not None and not self._file.closed:
            self._file.write(line.rstrip("\n") + "\n")

    def __exit__(self, *exc) -> None:
        if self._streams is not None:
            for s in (sys.stdout, sys.stderr):
                if isinstance(s, _Filtered):
                    s.flush()
            sys.stdout, sys.stderr = self._streams
        for name, (handlers, propagate) in self._saved.items():
            lg = logging.getLogger(name)
            lg.handlers, lg.propagate = handlers, propagate
        self._saved.clear()
        if self._root_saved is not None:
            root = logging.getLogger()
            root.handlers, level = self._root_saved
            root.setLevel(level)
        logging.captureWarnings(False)
        if self._warnings_saved is not None:
            warnings.showwarning = self._warnings_saved
        if self._file is not None:
            self._file.close()


def redirect_process_output(path: str | os.PathLike) -> Path:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C extensions and
    child processes too) to `path`, appending.  For a process that runs one trial and exits
    (a Tune trial actor), so its output lands in the trial's own log file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return path
