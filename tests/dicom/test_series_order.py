"""group_series / order_series / choose_series on synthetic files with known geometry."""
from __future__ import annotations

import numpy as np
import pytest

from cmr_ray.dicom import SeriesError, choose_series, group_series, load_grid, order_series, read_header
from tests.dicom.builders import SAX_NORMAL, headers_of, orientation_for, write_enhanced, write_mr, write_stack
from tests.dicom.faults import real_file


def one(headers):
    (s,) = group_series(headers)
    return s


def test_slices_ordered_along_normal_not_slice_location(tmp_path):
    paths = write_stack(tmp_path, n_slices=5, n_phases=3, desc="SAX_FIESTA")
    hs = headers_of(paths)
    # vendors fill SliceLocation inconsistently: make it run backwards and shuffle the files
    for h in hs:
        h["slice_location"] = -h["instance_number"]
    hs = [hs[i] for i in np.random.default_rng(0).permutation(len(hs))]
    s = one(hs)
    grid = order_series(s)
    assert grid.shape == (5, 3) and s.grid_shape == (5, 3)
    vol = load_grid(grid)
    assert vol[:, :, 0, 0].tolist() == [[100 * k + t + 1 for t in range(3)] for k in range(5)]
    assert grid.slice_positions == sorted(grid.slice_positions)
    assert np.allclose(np.abs(grid.normal), np.abs(SAX_NORMAL))


def test_phases_by_trigger_time_then_instance(tmp_path):
    # instance numbers run against time: ordering must follow TriggerTime
    for k, t in enumerate([300.0, 0.0, 150.0, 450.0]):
        write_mr(tmp_path / f"{k}.dcm", instance=10 - k, trigger=t, value=int(t) + 1)
    grid = order_series(one(headers_of(sorted(tmp_path.glob("*.dcm")))))
    assert grid.trigger_times == [0.0, 150.0, 300.0, 450.0]
    assert load_grid(grid)[0, :, 0, 0].tolist() == [1, 151, 301, 451]


def test_enhanced_multiframe_grid(tmp_path):
    frames = [{"position": (0, 0, z), "trigger": t, "value": 10 * int(z) + int(t // 40)}
              for t in (80, 0, 40) for z in (8, 0)]
    p = write_enhanced(tmp_path / "e.dcm", frames)
    grid = order_series(one([read_header(p)]))
    assert grid.shape == (2, 3) and {c[0] for row in grid for c in row} == {str(p)}
    assert load_grid(grid)[:, :, 0, 0].tolist() == [[0, 1, 2], [80, 81, 82]]


def test_classic_multiframe_is_one_slice_over_time():
    grid = order_series(one([read_header(real_file("emri_small.dcm"))]))
    assert grid.shape == (1, 10) and [i for _, i in grid[0]] == list(range(10))


def test_duplicated_and_missing_instance_numbers_warn_but_order(tmp_path):
    write_mr(tmp_path / "a.dcm", instance=1, trigger=0.0, value=1)
    write_mr(tmp_path / "b.dcm", instance=1, trigger=40.0, value=2)
    write_mr(tmp_path / "c.dcm", instance=None, trigger=80.0, value=3)
    s = one(headers_of(sorted(tmp_path.glob("*.dcm"))))
    assert not s.problems and s.grid_shape == (1, 3)
    assert any("InstanceNumber duplicated: 1" in w for w in s.warnings)
    assert any("InstanceNumber missing in 1 of 3" in w for w in s.warnings)


def test_duplicate_image_and_duplicate_sop_are_left_out(tmp_path):
    a = write_mr(tmp_path / "a.dcm", instance=1, trigger=0.0)
    write_mr(tmp_path / "b.dcm", instance=2, trigger=0.0)        # same place and time as a
    write_mr(tmp_path / "c.dcm", instance=3, trigger=40.0)
    hs = headers_of([a, tmp_path / "b.dcm", tmp_path / "c.dcm"])
    copy = dict(hs[2], path=str(tmp_path / "c_copy.dcm"))        # same SOPInstanceUID twice
    s = one(hs + [copy])
    assert s.file_problems[str(tmp_path / "b.dcm")].startswith("duplicate image: same position and TriggerTime as")
    assert s.file_problems[copy["path"]].startswith("duplicate SOPInstanceUID of")
    assert s.grid_shape == (1, 2)


def test_cine_with_missing_phase_is_a_series_problem(tmp_path):
    paths = write_stack(tmp_path, n_slices=3, n_phases=4)
    s = one(headers_of(paths[:-1]))  # last slice lost its last phase
    assert s.problems and s.problems[0].startswith("missing phase: 1 of 3 slices have fewer than 4 phases")
    with pytest.raises(SeriesError, match="missing phase"):
        order_series(s)
    single = write_stack(tmp_path / "one", n_slices=1, n_phases=5)
    s = one(headers_of(single[:-1]))  # 4 phases, CardiacNumberOfImages=5
    assert s.problems == ["missing phase: 4 phases but CardiacNumberOfImages=5"]


def test_inconsistent_rows_columns(tmp_path):
    paths = write_stack(tmp_path, n_slices=1, n_phases=3, cni=None)
    odd = write_mr(tmp_path / "odd.dcm", instance=9, trigger=900.0, rows=12, cols=10,
                   position=read_header(paths[0])["image_position"],
                   orientation=read_header(paths[0])["image_orientation"],
                   series=read_header(paths[0])["series_instance_uid"])
    s = one(headers_of(paths + [odd]))
    assert s.file_problems == {str(odd): "Rows x Columns 12x10 differs from the series' 8x8"}
    assert s.grid_shape == (1, 3) and not s.problems


def test_mixed_orientations_cannot_form_a_grid(tmp_path):
    for k, n in enumerate([(0, 0, 1), (0, 1, 0), (1, 0, 0)]):
        write_mr(tmp_path / f"{k}.dcm", instance=k + 1, orientation=orientation_for(n))
    s = one(headers_of(sorted(tmp_path.glob("*.dcm"))))
    assert s.problems == ["frames lie in 3 different plane orientations (a localizer, or mixed series)"]


def test_group_series_splits_by_series_uid(tmp_path):
    a = write_stack(tmp_path / "a", n_slices=2, n_phases=2, series_number=3, desc="SAX")
    b = write_stack(tmp_path / "b", n_slices=1, n_phases=4, series_number=2, desc="4CH")
    ss = group_series(headers_of(a + b))
    assert [(s.description, s.n_images, s.series_number) for s in ss] == [("4CH", 4, 2), ("SAX", 4, 3)]


def _series(tmp_path, name, n_phases, number, desc="SAX_FIESTA", broken=False):
    paths = write_stack(tmp_path / name, n_slices=2, n_phases=n_phases, series_number=number, desc=desc)
    return one(headers_of(paths[:-1] if broken else paths))


def test_choose_series_rule(tmp_path):
    small_late = _series(tmp_path, "a", 3, number=9)
    big_early = _series(tmp_path, "b", 5, number=4)
    big_late = _series(tmp_path, "c", 5, number=7)
    assert choose_series([small_late, big_early, big_late]) is big_late   # most frames, then SeriesNumber
    assert choose_series([big_late, big_early]) is big_late
    broken = _series(tmp_path, "d", 8, number=20, broken=True)
    assert broken.problems and choose_series([broken, small_late]) is small_late
    mag = _series(tmp_path, "m", 1, number=30, desc="SAX_DE_2D_400_mBH_MAG")
    psir = _series(tmp_path, "p", 1, number=29, desc="SAX_DE_2D_400_mBH_PSIR")
    assert choose_series([mag, psir]) is psir and choose_series([psir, mag]) is psir
    with pytest.raises(ValueError):
        choose_series([])


def test_slice_normal_equals_numpy_cross_and_is_shared_read_only():
    import numpy as np

    from cmr_ray.dicom.geometry import slice_normal

    rng = np.random.default_rng(3)
    for o in rng.normal(size=(200, 6)).tolist() + [[1, 0, 0, 0, 1, 0], ["0.5", "0.5", "0", "0", "0", "1"]]:
        n = np.cross(np.asarray(o[:3], float), np.asarray(o[3:], float))
        want = n / np.linalg.norm(n)
        got = slice_normal(o)
        assert got.tobytes() == want.tobytes()
        assert slice_normal(tuple(o)) is got and not got.flags.writeable
    assert slice_normal([1, 0, 0, 1, 0, 0]) is None and slice_normal([1, 0, 0]) is None
