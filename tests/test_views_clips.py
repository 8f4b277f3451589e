import numpy as np
import pytest

from cmr_ray.data.clips import MissingViewError, assemble, make_clip, sample_indices
from cmr_ray.data.schema import arrow_schema, columns_for, encode_view
from cmr_ray.views import (ABLATION_NAMES, FULL_COMBO, NAMES, PAPER_NAMES, ViewComboError, combo_slots,
                           paper_name, parse_combo)


def test_parse_combo_keeps_order_and_rejects_unknown():
    assert parse_combo("cine:sax+4ch|lge:sax+2ch") == [
        ("cine", "sax"), ("cine", "4ch"), ("lge", "sax"), ("lge", "2ch")]
    for bad in ("", "cine", "cine:5ch", "t1:sax", "cine:sax+sax", "cine:"):
        with pytest.raises(ViewComboError):
            parse_combo(bad)


def test_paper_names_round_trip():
    assert PAPER_NAMES == {           # the paper's six names; "lax" is the 4-chamber view
        "CINE_sax": "cine:sax",
        "CINE_lax-sax": "cine:4ch+sax",
        "LGE_lax-sax": "lge:sax+4ch",
        "LGE_lax-sax-2ch-3ch": "lge:sax+4ch+2ch+3ch",
        "CINE_lax-sax + LGE_lax-sax": "cine:4ch+sax|lge:sax+4ch",
        "CINE_lax-sax + LGE_lax-sax-2ch-3ch": "cine:4ch+sax|lge:sax+4ch+2ch+3ch",
    }
    assert FULL_COMBO == "cine:4ch+sax|lge:sax+4ch+2ch+3ch"
    # the authors' Figure 4 order along the frame axis: cine lax, cine sax, LGE sax, LGE lax, 2ch, 3ch
    assert parse_combo(FULL_COMBO) == [("cine", "4ch"), ("cine", "sax"), ("lge", "sax"),
                                       ("lge", "4ch"), ("lge", "2ch"), ("lge", "3ch")]
    for name, combo in NAMES.items():
        assert paper_name(combo) == name
    assert len({tuple(sorted(parse_combo(c))) for c in NAMES.values()}) == len(NAMES)  # one name per combo
    assert set(ABLATION_NAMES).isdisjoint(PAPER_NAMES)
    assert paper_name("cine:4ch") == "CINE_lax" and paper_name("lge:4ch") == "LGE_lax"
    assert paper_name("lge:3ch+2ch+4ch+sax|cine:sax+4ch") == "CINE_lax-sax + LGE_lax-sax-2ch-3ch"  # any order
    assert paper_name("cine:sax+2ch+3ch+4ch") == "cine:sax+2ch+3ch+4ch"   # lax is not 2ch+3ch+4ch
    assert paper_name("lge:2ch") == "lge:2ch"


def fake_row(S=6, T=12, H=4):
    row = {"study_key": "k"}
    for view in ("sax", "2ch"):
        s = S if view == "sax" else 1
        cine = np.zeros((s, T, H, H), np.uint8)
        cine[:, :, 0, 0] = np.arange(T)[None, :]          # phase index
        cine[:, :, 0, 1] = np.arange(s)[:, None]          # slice index
        row[f"cine_{view}"], row[f"cine_{view}_shape"] = encode_view(cine)
        lge = np.full((s, 1, H, H), 100, np.uint8)
        lge[:, 0, 0, 1] = np.arange(s)
        row[f"lge_{view}"], row[f"lge_{view}_shape"] = encode_view(lge)
    return row


def test_assemble_follows_figure_4():
    row = fake_row()
    clip = assemble(row, "cine:sax|lge:sax+2ch")
    # cine SAX: 12 phases of the middle slice (3); LGE SAX: 6 slices; LGE 2ch repeated to depth 6
    assert clip.shape == (12 + 6 + 6, 4, 4)
    assert list(clip[:12, 0, 0]) == list(range(12)) and set(clip[:12, 0, 1]) == {3}
    assert list(clip[12:18, 0, 1]) == list(range(6))
    assert set(clip[18:, 0, 1]) == {0}
    with pytest.raises(MissingViewError):
        assemble(row, "cine:4ch")


def test_sampling_midpoints_and_random_within_segments():
    assert list(sample_indices(12, 4)) == [1, 4, 7, 10]
    assert list(sample_indices(3, 6)) == [0, 0, 1, 1, 2, 2]
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sample_indices(24, 8, rng)
        assert all(3 * i <= j < 3 * (i + 1) for i, j in enumerate(idx))
    assert make_clip(fake_row(), "cine:2ch", 1).shape == (1, 4, 4)


def test_schema_has_every_slot_and_pruning():
    names = arrow_schema().names
    for slot in combo_slots("cine:sax+2ch+3ch+4ch|lge:sax+2ch+3ch+4ch"):
        assert slot in names and f"{slot}_shape" in names
    cols = columns_for(combo_slots("cine:sax"))
    assert "cine_sax" in cols and "lge_sax" not in cols and "impression" in cols


def test_make_clip_copies_only_sampled_frames_and_equals_the_full_assembly():
    from cmr_ray.data.clips import make_clip_full

    row = fake_row(S=5, T=7)
    rng0 = np.random.default_rng(0)
    for extra in ("lge_sax", None):  # with and without an LGE SAX depth to repeat LAX slices to
        if extra is None:
            row = {k: v for k, v in row.items() if not k.startswith("lge_sax")}
        for combo in ("cine:sax", "cine:2ch+sax|lge:2ch", "lge:2ch+sax", "cine:sax|lge:sax+2ch"):
            if extra is None and ("lge:sax" in combo or "lge:2ch+sax" in combo):
                continue  # needs the LGE SAX row
            for frames in (1, 3, 16, 64):
                assert np.array_equal(make_clip(row, combo, frames), make_clip_full(row, combo, frames))
                seed = int(rng0.integers(1 << 30))
                a = make_clip(row, combo, frames, np.random.default_rng(seed))
                b = make_clip_full(row, combo, frames, np.random.default_rng(seed))
                assert a.dtype == np.uint8 and np.array_equal(a, b), (combo, frames)
