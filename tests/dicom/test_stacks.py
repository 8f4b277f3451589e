"""merge_split_stacks: a SAX stack written as one series per slice becomes one series."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.dicom import classify_study, group_series, load_grid, order_series
from cmr_ray.dicom.stacks import merge_split_stacks, stack_base
from tests.dicom.builders import SAX_NORMAL, headers_of, orientation_for, write_mr

STUDY = "1.2.826.0.1.9"
ORIGIN = np.array([10.0, -20.0, 30.0])


def slice_series(folder, k, *, desc, number, uid=None, normal=SAX_NORMAL, phases=5, spacing=8.0, ti=None,
                 rows=8, cols=8, drop_phase=None):
    """One series holding slice k of a stack (position ORIGIN + k*spacing*normal), all phases.

    Each slice has its own RR interval (TriggerTimes differ per slice), as in real scans.
    Pixel value of phase t is 100*k + t + 1, so a volume shows which slice landed where."""
    n = np.asarray(SAX_NORMAL, float)
    pos = ORIGIN + k * spacing * n
    uid = uid or f"{STUDY}.{number}"
    paths = []
    for t in range(phases):
        if t == drop_phase:
            continue
        paths.append(write_mr(folder / f"s{number}_{t:02d}.dcm", study=STUDY, series=uid, desc=desc,
                              series_number=number, instance=t + 1, position=pos, orientation=orientation_for(normal),
                              trigger=t * (800.0 + 13 * k) / phases if phases > 1 else 0.0,
                              cni=phases if phases > 1 else None, ti=ti, value=100 * k + t + 1, rows=rows, cols=cols))
    return paths


def run(paths):
    ss = group_series(headers_of(paths))
    return merge_split_stacks(ss, classify_study(ss))


def test_ukb_split_cine_sax_merged_in_position_order(tmp_path):
    # b1 is the most basal slice; series numbers run against position and the folder is shuffled
    paths = []
    for b, k in enumerate([5, 4, 3, 2, 1, 0], start=1):
        paths += slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{b}", number=20 + (b * 7) % 6)
    paths += slice_series(tmp_path, 0, desc="CINE_segmented_LAX_4Ch", number=10, normal=(0.2, 0.9, 0.3))
    ss, cs, merges = run([paths[i] for i in np.random.default_rng(1).permutation(len(paths))])
    assert len(ss) == len(cs) == 2
    (m,) = [(s, c) for s, c in zip(ss, cs) if c.view == "sax"]
    s, c = m
    members = sorted(f"{STUDY}.{20 + (b * 7) % 6}" for b in range(1, 7))
    assert s.series_uid == members[0] + ":merged" and s.description == "CINE_segmented_SAX"
    assert (c.sequence, c.view) == ("cine", "sax") and "merged 6 single-slice series" in c.rule
    assert "6 slice(s) x 5 phase(s)" in c.evidence
    assert merges == [(s.series_uid, [f"{STUDY}.{20 + (b * 7) % 6}" for b in (6, 5, 4, 3, 2, 1)])]
    assert s.grid_shape == (6, 5) and not s.problems and s.series_number == 20
    assert s.warnings == [] and s.n_images == 30   # InstanceNumbers repeat across members: no warning
    grid = order_series(s)
    vol = load_grid(grid)
    assert vol.shape == (6, 5, 8, 8)
    assert vol[:, :, 0, 0].tolist() == [[100 * k + t + 1 for t in range(5)] for k in range(6)]
    assert grid.slice_positions == sorted(grid.slice_positions)
    assert np.allclose(np.diff(grid.slice_positions), 8.0, atol=1e-3)
    other = next(x for x in ss if x is not s)
    assert other.description == "CINE_segmented_LAX_4Ch"   # left alone


def test_slice_style_description_merged(tmp_path):
    paths = [p for k in range(4) for p in slice_series(tmp_path, k, desc=f"sa_cine_slice_{k + 1}", number=30 + k)]
    ss, cs, merges = run(paths)
    assert len(ss) == 1 and ss[0].description == "sa_cine" and ss[0].grid_shape == (4, 5)
    assert len(merges) == 1 and len(merges[0][1]) == 4


def test_lge_slices_with_one_description_merged(tmp_path):
    paths = [p for k in range(5)
             for p in slice_series(tmp_path, k, desc="LGE_SAX_PSIR", number=40 + k, phases=1, ti=300)]
    ss, cs, merges = run(paths)
    assert [(c.sequence, c.view, c.variant) for c in cs] == [("lge", "sax", "psir")]
    vol = load_grid(order_series(ss[0]))
    assert vol.shape == (5, 1, 8, 8) and vol[:, 0, 0, 0].tolist() == [1, 101, 201, 301, 401]


def test_other_orientation_is_not_merged(tmp_path):
    tilted = np.asarray(SAX_NORMAL) + np.array([0.0, 0.4, 0.0])
    paths = [p for k in range(3)
             for p in slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{k + 1}", number=50 + k)]
    paths += slice_series(tmp_path, 3, desc="CINE_segmented_SAX_b4", number=53, normal=tilted)
    ss, cs, merges = run(paths)
    assert len(merges) == 1 and f"{STUDY}.53" not in merges[0][1] and len(merges[0][1]) == 3
    assert sorted(s.series_uid for s in ss) == [f"{STUDY}.50:merged", f"{STUDY}.53"]


def test_other_phase_count_or_matrix_is_not_merged(tmp_path):
    paths = [p for k in range(3)
             for p in slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{k + 1}", number=60 + k)]
    paths += slice_series(tmp_path, 3, desc="CINE_segmented_SAX_b4", number=63, phases=4)
    paths += slice_series(tmp_path, 4, desc="CINE_segmented_SAX_b5", number=64, rows=10)
    ss, cs, merges = run(paths)
    assert [sorted(m) for _, m in merges] == [[f"{STUDY}.60", f"{STUDY}.61", f"{STUDY}.62"]]
    assert {s.series_uid for s in ss} == {f"{STUDY}.60:merged", f"{STUDY}.63", f"{STUDY}.64"}


def test_different_descriptions_are_not_merged(tmp_path):
    paths = slice_series(tmp_path, 0, desc="CINE_segmented_SAX_b1", number=70)
    paths += slice_series(tmp_path, 1, desc="SAX_FIESTA_BH", number=71)
    ss, cs, merges = run(paths)
    assert merges == [] and [s.series_uid for s in ss] == [f"{STUDY}.70", f"{STUDY}.71"]
    assert all(s.grid_shape == (1, 5) for s in ss)


def test_two_protocols_make_two_stacks(tmp_path):
    paths = [p for k in range(3)
             for p in slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{k + 1}", number=80 + k)]
    paths += [p for k in range(3) for p in slice_series(tmp_path, k, desc=f"sa_cine_slice_{k + 1}", number=90 + k)]
    ss, cs, merges = run(paths)
    assert sorted(s.description for s in ss) == ["CINE_segmented_SAX", "sa_cine"]
    assert all(s.grid_shape == (3, 5) for s in ss)


def test_repeated_slice_keeps_the_later_and_leaves_the_other(tmp_path):
    paths = [p for k in range(3)
             for p in slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{k + 1}", number=100 + k)]
    paths += slice_series(tmp_path, 1, desc="CINE_segmented_SAX_b2", number=110)  # slice 2 redone
    ss, cs, merges = run(paths)
    (_, members), = merges
    assert members == [f"{STUDY}.100", f"{STUDY}.110", f"{STUDY}.102"]
    assert sorted(s.series_uid for s in ss) == [f"{STUDY}.100:merged", f"{STUDY}.101"]


def test_broken_or_multislice_series_stay_alone(tmp_path):
    paths = [p for k in range(3)
             for p in slice_series(tmp_path, k, desc=f"CINE_segmented_SAX_b{k + 1}", number=120 + k)]
    paths += slice_series(tmp_path, 3, desc="CINE_segmented_SAX_b4", number=123, drop_phase=2)  # missing phase
    stack = [p for k in range(2)   # a two-slice series with the same base is a stack already
             for p in slice_series(tmp_path, 5 + k, desc="CINE_segmented_SAX_b6", number=124,
                                   uid=f"{STUDY}.124")]
    ss, cs, merges = run(paths + stack)
    assert [sorted(m) for _, m in merges] == [[f"{STUDY}.120", f"{STUDY}.121", f"{STUDY}.122"]]
    assert {s.series_uid for s in ss} == {f"{STUDY}.120:merged", f"{STUDY}.123", f"{STUDY}.124"}


def test_nothing_to_merge_passes_through(tmp_path):
    paths = slice_series(tmp_path, 0, desc="CINE_segmented_SAX_b1", number=130)
    ss0 = group_series(headers_of(paths))
    cs0 = classify_study(ss0)
    ss, cs, merges = merge_split_stacks(ss0, cs0)
    assert ss == ss0 and cs == cs0 and merges == []
    with pytest.raises(ValueError, match="1 series but 0 classifications"):
        merge_split_stacks(ss0, [])


@pytest.mark.parametrize("desc, base, index", [
    ("CINE_segmented_SAX_b12", "CINE_segmented_SAX", 12), ("sa_cine_slice_3", "sa_cine", 3),
    ("cine_sax_slice3", "cine_sax", 3), ("SA CINE 4", "SA CINE", 4), ("Cine SAX (slice 5)", "Cine SAX", 5),
    ("sax-s2", "sax", 2), ("LGE_SAX_PSIR", "LGE_SAX_PSIR", None), ("SAX3", "SAX3", None),
    ("LGE_TI300", "LGE_TI300", None), ("4CH", "4CH", None), ("b1", "b1", None), ("", "", None)])
def test_stack_base(desc, base, index):
    assert stack_base(desc) == (base, index)
