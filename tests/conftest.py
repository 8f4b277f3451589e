"""Shared test setup: fast Train reports, no hub access, and no Ray bind policy of the tests' own.

RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER (what keeps a local Ray on 127.0.0.1) is deliberately NOT
set here: `cmr_ray.runtime` must set it, and the tests that check what Ray listens on
(tests/test_runtime.py, tests/faults/test_phi_end_to_end.py) would pass whatever the code
did if the session set it for them.  An in-process `init_ray` puts it into os.environ, so
it is removed again before each test module: subprocesses copying os.environ never
inherit it."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CMR_RAY_SALT", "test-salt-not-for-real-data")
# the frozen-text feature cache: one per test session (shared by its Ray workers), never ~/.cache
os.environ.setdefault("CMR_RAY_CACHE", tempfile.mkdtemp(prefix="cmr-ray-test-cache-"))

BIND_POLICY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
os.environ.pop(BIND_POLICY, None)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.exists():
        pytest.skip("../shared is absent (a user's clone has none); shared-data tests need it")
    return SHARED


@pytest.fixture(scope="module", autouse=True)
def no_bind_policy_from_earlier_tests():
    """Each module starts without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER in os.environ (autouse:
    set up before the module's other fixtures, such as a pipeline of subprocesses).  A Ray
    already running keeps its processes' environment."""
    os.environ.pop(BIND_POLICY, None)
    yield
    os.environ.pop(BIND_POLICY, None)
