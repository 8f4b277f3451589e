"""Fixtures for the data pipeline tests (builders live in helpers.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_module():
    """A real local Ray with 2 CPUs for a test module, shut down afterwards."""
    from cmr_ray.runtime import init_ray

    ray = init_ray(num_cpus=2)
    yield ray
    ray.shutdown()
