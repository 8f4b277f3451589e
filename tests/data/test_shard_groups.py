"""shard_groups: every study in exactly one group, groups of about equal decode cost,
several per CPU, none over the shard limit, the same groups for the same studies.
index_cost: frames, a full decode weighted 3."""
from __future__ import annotations

import random

from cmr_ray.data.index import light_header
from cmr_ray.data.prepare import index_cost, shard_groups


def _groups(items, cpus, **kw):
    return shard_groups(items, cpus, cost=lambda it: it[1], key=lambda it: it[0], **kw)


def test_index_cost_counts_frames_and_weights_full_decodes():
    full = [{"number_of_frames": 1, "pixel_layout": {"offset": 0}, "study_instance_uid": "1.2"},
            {"number_of_frames": 4, "pixel_layout": None, "study_instance_uid": "1.2"}]  # compressed
    rows = [{"header": light_header(h)} for h in full] + [{"header": None}]  # and an unreadable file
    assert index_cost(rows) == 1 + 12


def test_light_header_keeps_what_the_driver_needs_and_no_pixel_layout():
    from cmr_ray.dicom.headers import PHI_KEYS

    h = {"study_instance_uid": "1.2.3", "number_of_frames": 2, "pixel_layout": {"offset": 9},
         "series_description": "cine", **{k: f"v-{k}" for k in PHI_KEYS}}
    light = light_header(h)
    assert light == {"study_instance_uid": "1.2.3", "decode_cost": 2, **{k: f"v-{k}" for k in PHI_KEYS}}


def test_groups_cover_every_study_once_with_balanced_cost():
    rng = random.Random(0)
    items = [(f"k{i:03d}", rng.randint(20, 400)) for i in range(100)]
    groups = _groups(items, cpus=2)
    assert len(groups) == 8  # 4 per CPU
    assert sorted(k for g in groups for k, _ in g) == sorted(k for k, _ in items)
    costs = [sum(c for _, c in g) for g in groups]
    assert costs == sorted(costs, reverse=True)
    assert max(costs) - min(costs) <= max(c for _, c in items)  # LPT bound
    assert all([k for k, _ in g] == sorted(k for k, _ in g) for g in groups)
    assert _groups(list(reversed(items)), cpus=2) == groups


def test_group_count_and_size_limits():
    items = [(f"k{i:03d}", 5) for i in range(100)]
    assert len(_groups(items[:3], cpus=4)) == 3  # never an empty group
    big = _groups(items, cpus=1, max_per_shard=10)
    assert len(big) == 10 and all(len(g) == 10 for g in big)
    assert _groups([], cpus=2) == []
