"""Sweep units: an existing store must match the config; trials start longest clip first."""
from __future__ import annotations

import json

import pytest

from cmr_ray.config import ConfigError, load_config
from cmr_ray.synth.cohort import FORMAT_VERSION
from cmr_ray.data.ensure import check_store_matches, existing_store_info

INFO = {"image_size": 64, "counts": {"studies": 398, "excluded": 2}}
COHORT = {"studies": 400, "seed": 0, "protocol": "small", "files": 46767, "format_version": FORMAT_VERSION}


def _cfg(**over):
    return load_config(None, {"data.synth_studies": 400, "data.image_size": 64, **over})


def test_the_store_of_the_configured_cohort_is_accepted():
    check_store_matches(_cfg(), INFO, COHORT)


@pytest.mark.parametrize("over, words", [
    ({"data.synth_studies": 800}, ["studies 400", "data.synth_", "studies 800"]),
    ({"data.synth_seed": 3}, ["seed 0", "seed 3"]),
    ({"data.synth_protocol": "paper"}, ["protocol small", "protocol paper"]),
    ({"data.image_size": 96}, ["64 px", "data.image_size", "96"]),
])
def test_another_cohort_or_frame_size_is_one_clear_line(over, words):
    with pytest.raises(ConfigError) as e:
        check_store_matches(_cfg(**over), INFO, COHORT)
    msg = str(e.value)
    assert "\n" not in msg and "data.store" in msg
    assert all(w in msg for w in words), msg


def test_a_cohort_of_an_older_generator_is_another_cohort():
    with pytest.raises(ConfigError, match="format_version 1"):
        check_store_matches(_cfg(), INFO, {**COHORT, "format_version": 1})


def test_a_cohort_json_from_before_the_rename_is_the_configured_cohort(tmp_path):
    """cohort.json said `preset` before `protocol`: the sweep's store for it is still accepted."""
    from cmr_ray.data.ensure import cohort_dir, store_cohort

    store = str(tmp_path / "store")
    cohort_dir(store).mkdir(parents=True)
    old = {k: v for k, v in COHORT.items() if k != "protocol"} | {"preset": "small"}
    (cohort_dir(store) / "cohort.json").write_text(json.dumps(old))
    assert store_cohort(store) == COHORT
    check_store_matches(_cfg(**{"data.store": store}), INFO, store_cohort(store))
    with pytest.raises(ConfigError, match="protocol small"):
        check_store_matches(_cfg(**{"data.store": store, "data.synth_protocol": "paper"}), INFO, store_cohort(store))


def test_a_store_prepared_by_hand_or_from_dicom_is_taken_as_it_is():
    check_store_matches(_cfg(**{"data.synth_studies": 800}), INFO, None)  # no cohort the sweep made
    check_store_matches(_cfg(**{"data.source": "dicom", "data.synth_studies": 800}), INFO, COHORT)


def test_the_sweep_refuses_a_store_of_another_cohort_before_starting_ray(tmp_path, monkeypatch):
    from cmr_ray.tune import run_sweep

    store = tmp_path / "store"
    store.mkdir()
    (store / "store.json").write_text(json.dumps(INFO))
    (tmp_path / "store-cohort").mkdir()
    (tmp_path / "store-cohort" / "cohort.json").write_text(json.dumps(COHORT))
    exp = tmp_path / "e.yaml"
    exp.write_text(f"data: {{store: {store}, synth_studies: 800}}\nsweep: {{trials: [{{data.frames: 4}}]}}\n")
    monkeypatch.setattr("cmr_ray.runtime.init_ray", lambda *a, **k: pytest.fail("Ray started"))
    with pytest.raises(ConfigError, match="studies 800"):
        run_sweep(str(exp), tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")


def test_existing_store_info_reads_store_json_or_says_none(tmp_path):
    assert existing_store_info(str(tmp_path / "absent")) is None
    (tmp_path / "store.json").write_text(json.dumps(INFO))
    assert existing_store_info(str(tmp_path)) == INFO


def test_trials_start_longest_clip_first_then_in_file_order():
    from cmr_ray.tune.sweep import longest_first

    payloads = {k: {"cfg": load_config(None, {"data.frames": f}), "index": i}
                for i, (k, f) in enumerate([("a", 8), ("b", 32), ("c", 8), ("d", 16)])}
    assert longest_first(payloads) == ["b", "d", "a", "c"]
