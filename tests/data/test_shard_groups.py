"""shard_groups: every study in exactly one group, groups of about equal decode cost,
several per CPU, none over the shard limit, the same groups for the same plans."""
from __future__ import annotations

import random

from cmr_ray.data.plan import SlotPlan, StudyPlan
from cmr_ray.data.prepare import decode_cost, shard_groups


def _plan(key: str, frames: int, compressed: bool = False) -> StudyPlan:
    grid = [[(f"/d/{key}/{i}.dcm", 0) for i in range(frames)]]
    layouts = {} if compressed else {p: {"offset": 0} for p, _ in grid[0]}
    slot = SlotPlan("1.2", "s", "cine", "sax", grid, [], layouts)
    return StudyPlan(key, "p", "train", "imp", {}, {"cine_sax": slot})


def test_decode_cost_counts_frames_and_weights_full_decodes():
    assert decode_cost(_plan("a", 10)) == 10 and decode_cost(_plan("b", 10, compressed=True)) == 30


def test_groups_cover_every_study_once_with_balanced_cost():
    rng = random.Random(0)
    plans = [_plan(f"k{i:03d}", rng.randint(20, 400), rng.random() < 0.2) for i in range(100)]
    groups = shard_groups(plans, cpus=2)
    assert len(groups) == 8  # 4 per CPU
    assert sorted(p.study_key for g in groups for p in g) == sorted(p.study_key for p in plans)
    costs = [sum(decode_cost(p) for p in g) for g in groups]
    assert costs == sorted(costs, reverse=True)
    assert max(costs) - min(costs) <= max(decode_cost(p) for p in plans)  # LPT bound
    assert all([p.study_key for p in g] == sorted(p.study_key for p in g) for g in groups)
    again = shard_groups(list(reversed(plans)), cpus=2)
    assert [[p.study_key for p in g] for g in again] == [[p.study_key for p in g] for g in groups]


def test_group_count_and_size_limits():
    plans = [_plan(f"k{i:03d}", 5) for i in range(100)]
    assert len(shard_groups(plans[:3], cpus=4)) == 3  # never an empty group
    big = shard_groups(plans, cpus=1, max_per_shard=10)
    assert len(big) == 10 and all(len(g) == 10 for g in big)
    assert shard_groups([], cpus=2) == []
