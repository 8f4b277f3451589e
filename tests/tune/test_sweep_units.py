"""Sweep units: an existing store must match the config; trials start longest clip first."""
from __future__ import annotations

import json

import pytest

from cmr_ray.config import ConfigError, load_config
from cmr_ray.tune.sweep import check_store_matches, existing_store_info

INFO = {"image_size": 64, "counts": {"studies": 398, "excluded": 2}}


def _cfg(**over):
    return load_config(None, {"data.synth_studies": 400, "data.image_size": 64, **over})


def test_the_store_of_the_configured_cohort_is_accepted():
    check_store_matches(_cfg(), INFO)


@pytest.mark.parametrize("over, words", [
    ({"data.synth_studies": 800}, ["400 studies", "data.synth_studies", "800"]),
    ({"data.image_size": 96}, ["64 px", "data.image_size", "96"]),
])
def test_another_cohort_size_or_frame_size_is_one_clear_line(over, words):
    with pytest.raises(ConfigError) as e:
        check_store_matches(_cfg(**over), INFO)
    msg = str(e.value)
    assert "\n" not in msg and "data.store" in msg
    assert all(w in msg for w in words), msg


def test_a_dicom_source_store_is_not_held_to_the_synthetic_size():
    check_store_matches(_cfg(**{"data.source": "dicom", "data.synth_studies": 800}), INFO)


def test_existing_store_info_reads_store_json_or_says_none(tmp_path):
    assert existing_store_info(str(tmp_path / "absent")) is None
    (tmp_path / "store.json").write_text(json.dumps(INFO))
    assert existing_store_info(str(tmp_path)) == INFO


def test_trials_start_longest_clip_first_then_in_file_order():
    from cmr_ray.tune.sweep import longest_first

    payloads = {k: {"cfg": {"data": {"frames": f}}, "index": i}
                for i, (k, f) in enumerate([("a", 8), ("b", 32), ("c", 8), ("d", 16)])}
    assert longest_first(payloads) == ["b", "d", "a", "c"]
