"""Shared test setup: a loopback-only Ray, fast Train reports, no hub access."""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CMR_RAY_SALT", "test-salt-not-for-real-data")
# the frozen-text feature cache: one per test session (shared by its Ray workers), never ~/.cache
os.environ.setdefault("CMR_RAY_CACHE", tempfile.mkdtemp(prefix="cmr-ray-test-cache-"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.exists():
        pytest.skip("../shared is absent (a user's clone has none); shared-data tests need it")
    return SHARED
