import numpy as np
import pytest

from cmr_ray.data.clips import MissingViewError, assemble, make_clip, sample_indices
from cmr_ray.data.schema import arrow_schema, columns_for, encode_view
from cmr_ray.views import PAPER_NAMES, ViewComboError, combo_slots, paper_name, parse_combo


def test_parse_combo_keeps_order_and_rejects_unknown():
    assert parse_combo("cine:sax+4ch|lge:sax+2ch") == [
        ("cine", "sax"), ("cine", "4ch"), ("lge", "sax"), ("lge", "2ch")]
    for bad in ("", "cine", "cine:5ch", "t1:sax", "cine:sax+sax", "cine:"):
        with pytest.raises(ViewComboError):
            parse_combo(bad)


def test_paper_names_round_trip():
    for name, combo in PAPER_NAMES.items():
        assert paper_name(combo) == name
    assert paper_name("cine:4ch+3ch+2ch+sax") == "CINE_lax-sax"  # order-insensitive
    assert paper_name("lge:4ch") == "lge:4ch"


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
