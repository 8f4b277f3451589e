"""Starting or joining Ray, the same way for every command.

A Ray that cmr-ray starts by itself stays on 127.0.0.1 (Ray listens on the machine's
routable address by default); `address` joins an existing cluster instead.  Ray's own
log noise is kept down; progress is printed by cmr-ray itself.
"""
from __future__ import annotations

import os


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


def init_ray(address: str | None = None, num_cpus: int | None = None, **kw):
    """Join `address` (or RAY_ADDRESS), or start a loopback-only local Ray.

    Returns the `ray` module.  Reuses an already initialised Ray in this process.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    local_env(loopback=not address)
    import ray

    if ray.is_initialized():
        return ray
    common = dict(log_to_driver=True, logging_level="WARNING", configure_logging=True)
    if address:
        ray.init(address=address, **{**common, **kw})
    else:
        # No dashboard: it needs ray[default]. Known cost: Ray Train's placement-group
        # cleaner uses the state API, so an ASHA-stopped trial keeps its reservation
        # until the sweep ends (its actors do exit).
        # address="local": always a new Ray of our own, never one that `ray start` left
        # running on this machine (plain `ray.init()` would join that).
        local = dict(address="local", num_cpus=num_cpus, include_dashboard=False)
        ray.init(**{**common, **local, **kw})
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
    except Exception:  # older/newer Ray without the flag
        pass
    return ray
