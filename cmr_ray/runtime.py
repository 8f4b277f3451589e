"""Starting or joining Ray, the same way for every command.

A Ray that cmr-ray starts by itself stays on 127.0.0.1 (Ray listens on the machine's
routable address by default); `address` joins an existing cluster instead.  Ray's own
log noise is kept down; progress is printed by cmr-ray itself.

The local Ray runs Ray's dashboard (and with it the state API that Ray Train's placement
group cleaner needs), on 127.0.0.1 only; `init_ray` prints its URL:

    Ray dashboard: http://127.0.0.1:8265

The dashboard's port is chosen before Ray starts (8265 when free) and set as
RAY_API_SERVER_ADDRESS while `ray.init` starts Ray's processes, which inherit it (the
driver's own environment is left as it was): Ray's state API, asked from a worker without
an address, otherwise guesses the cluster from the machine's processes and, with two Rays
on one machine, fails or, worse, asks the other one (Ray Train's placement-group cleaner
would then remove a live trial's reservation).  Without the dashboard the variable is
withheld from them: a value meant for another cluster would be just as wrong.

`CMR_RAY_DASHBOARD=0` (or `--no-dashboard` on the commands that start Ray) starts Ray
without it: a little faster to start (bench/bench_dashboard.py), but nothing to watch, and
an ASHA-stopped trial then keeps its CPUs until the sweep ends.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Callable

DASHBOARD_ENV = "CMR_RAY_DASHBOARD"
DASHBOARD_HOST = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8265
API_SERVER_ENV = "RAY_API_SERVER_ADDRESS"  # Ray's: where its state API and job client go
_OFF, _ON = ("0", "false", "no", "off"), ("", "1", "true", "yes", "on")
_dashboard_url: str | None = None


def local_env(loopback: bool = True) -> None:
    """Environment for Ray; call before `import ray` (Ray reads its bind policy then).

    loopback=True keeps a Ray this process starts on 127.0.0.1 (single node); a driver
    that joins an existing cluster must not set it.
    """
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        _bind_policy_now()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # no "Starting execution of Dataset ..." per epoch
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _bind_policy_now() -> None:
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when `ray` is first imported: in a
    process that imported Ray before (a library user, a test session) the variable alone
    comes too late and the Ray it starts listens on the routable address.  Apply it to the
    imported constant as well."""
    import sys

    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        value = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "").strip().lower()
        constants.ENABLE_RAY_CLUSTER = value in ("1", "true")


def dashboard_wanted(flag: bool | None = None) -> bool:
    """`flag` when given (a command's --dashboard/--no-dashboard), else CMR_RAY_DASHBOARD
    (unset: on).  A value that is neither on nor off is an error naming the variable."""
    if flag is not None:
        return bool(flag)
    value = os.environ.get(DASHBOARD_ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ValueError(f"{DASHBOARD_ENV}={os.environ[DASHBOARD_ENV]!r}: expected 1 (on) or 0 (off)")


def dashboard_url() -> str | None:
    """The URL of the dashboard of the Ray this process started or joined through
    `init_ray` and has not shut down (None: none)."""
    ray = sys.modules.get("ray")
    return _dashboard_url if ray is not None and ray.is_initialized() else None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def init_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool | None = None,
             echo: Callable[[str], None] | None = _stderr, **kw):
    """Join `address` (or RAY_ADDRESS), or start a loopback-only local Ray.

    A local Ray gets the dashboard on 127.0.0.1 unless `dashboard` is False (None: the
    CMR_RAY_DASHBOARD switch, on by default); `echo` (stderr by default, None: silent) is
    told its URL, or why there is none.  Returns the `ray` module.  Reuses an already
    initialised Ray in this process (and says nothing).
    """
    global _dashboard_url
    address = address or os.environ.get("RAY_ADDRESS") or None
    want = dashboard_wanted(dashboard)
    local_env(loopback=not address)
    import ray

    if ray.is_initialized():
        return ray
    say = echo or (lambda line: None)
    common = dict(log_to_driver=True, logging_level="WARNING", configure_logging=True)
    if address:
        ctx = ray.init(address=address, **{**common, **kw})
    else:
        missing = _dashboard_missing() if want else None
        if missing:
            say(f"Ray dashboard: off ({missing}; `pip install 'ray[default]'` brings it, "
                f"{DASHBOARD_ENV}=0 silences this)")
            want = False
        # Without the dashboard there is no state API: Ray Train's placement-group cleaner
        # cannot tell that an ASHA-stopped trial's controller is gone, so the trial's
        # reservation stays until the sweep ends (and the cleaner warns every second, or
        # its thread dies with a traceback when the machine runs other Rays).
        # address="local": always a new Ray of our own, never one that `ray start` left
        # running on this machine (plain `ray.init()` would join that).
        local = dict(address="local", num_cpus=num_cpus, include_dashboard=want)
        api = None
        if want:
            port = kw.pop("dashboard_port", None) or _free_port(DEFAULT_DASHBOARD_PORT)
            local.update(dashboard_host=DASHBOARD_HOST, dashboard_port=port)
            api = f"http://{DASHBOARD_HOST}:{port}"
        with _env_for_ray_processes(API_SERVER_ENV, api):
            ctx = ray.init(**{**common, **local, **kw})
    _dashboard_url = _url(getattr(ctx, "dashboard_url", None))
    if _dashboard_url:
        say(f"Ray dashboard: {_dashboard_url}" + (" (the cluster's)" if address else ""))
    elif want and not address:
        say("Ray dashboard: did not start (its log is under the Ray session's logs/dashboard.log)")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
    except Exception:  # older/newer Ray without the flag
        pass
    return ray


@contextmanager
def _env_for_ray_processes(name: str, value: str | None):
    """`name` set to `value` (None: unset) while Ray's processes start, then as it was."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _free_port(preferred: int) -> int:
    """`preferred` if nothing listens on it on 127.0.0.1, else a free port the kernel picks."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((DASHBOARD_HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port on {DASHBOARD_HOST} for Ray's dashboard")


def _dashboard_missing() -> str | None:
    """Why Ray's dashboard cannot run here (its packages, `ray[default]`), or None."""
    from ray._private.utils import get_dashboard_dependency_error

    err = get_dashboard_dependency_error()
    return f"its packages are missing: {err}" if err else None


def _url(address: str | None) -> str | None:
    if not address:
        return None
    return address if "://" in address else f"http://{address}"
