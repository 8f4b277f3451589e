"""View combos: what the model sees, and the one place the paper's names map onto them.

A combo is ``sequence:view+view|sequence:view...``, e.g. ``cine:4ch+sax|lge:sax+4ch+2ch+3ch``.
Sequences are ``cine`` and ``lge``; views are ``sax``, ``2ch``, ``3ch``, ``4ch``.
Order inside the string is kept: it is the order views are concatenated along the
frame axis (`cmr_ray.data.clips.assemble`).

The paper (Qiu, Huang et al., CMRformer / CMR-CLIP, Table 4) names configurations like
``CINE_lax-sax + LGE_lax-sax-2ch-3ch``.  There ``lax`` is ONE long-axis series, the
4-chamber view; 2ch and 3ch are named apart.  The authors' code has six views, concatenated
in their Figure 4's order: cine lax (4ch), cine sax, LGE sax, LGE lax (4ch), LGE 2ch,
LGE 3ch; `PAPER_NAMES`' combos keep that order.

- `PAPER_NAMES`: the paper's six names -> combos (`FULL_COMBO` is the last, all six views).
- `ABLATION_NAMES`: paper-style names for single views and mixes the paper does not run
  (`experiments/ablation.yaml`): CINE_lax = ``cine:4ch``, LGE_sax, LGE_lax = ``lge:4ch``,
  CINE_lax-sax + LGE_sax.  Each combo has one name (no separate "CINE_4ch").
- `paper_name(combo)` goes back, matching a combo whatever its view order; a combo with
  no name comes back unchanged.
"""
from __future__ import annotations

SEQUENCES = ("cine", "lge")
VIEWS = ("sax", "2ch", "3ch", "4ch")
SLOTS = tuple(f"{s}_{v}" for s in SEQUENCES for v in VIEWS)  # store column names


class ViewComboError(ValueError):
    pass


def parse_combo(combo: str) -> list[tuple[str, str]]:
    """'cine:sax+4ch|lge:sax' -> [('cine','sax'), ('cine','4ch'), ('lge','sax')]."""
    if not isinstance(combo, str) or not combo.strip():
        raise ViewComboError(f"expected a view combo such as 'cine:sax+4ch|lge:sax', got {combo!r}")
    out: list[tuple[str, str]] = []
    for part in combo.replace(" ", "").split("|"):
        seq, sep, views = part.partition(":")
        if not sep or not views:
            raise ViewComboError(f"expected 'sequence:view[+view]' in {combo!r}, got {part!r}")
        if seq not in SEQUENCES:
            raise ViewComboError(f"names unknown sequence {seq!r} in {combo!r} (known: {', '.join(SEQUENCES)})")
        for view in views.split("+"):
            if view not in VIEWS:
                raise ViewComboError(f"names unknown view {view!r} in {combo!r} (known: {', '.join(VIEWS)})")
            if (seq, view) in out:
                raise ViewComboError(f"repeats {seq}:{view} in {combo!r}")
            out.append((seq, view))
    return out


def combo_slots(combo: str) -> list[str]:
    """Store columns a combo reads, e.g. ['cine_sax', 'lge_sax']."""
    return [f"{s}_{v}" for s, v in parse_combo(combo)]


# The paper's six names (Table 4 and the authors' code: cine_lax, cine_sa, lge_sa, lge_lax,
# lge_2ch, lge_3ch), in the frame-axis order of their Figure 4.
PAPER_NAMES: dict[str, str] = {
    "CINE_sax": "cine:sax",
    "CINE_lax-sax": "cine:4ch+sax",
    "LGE_lax-sax": "lge:sax+4ch",
    "LGE_lax-sax-2ch-3ch": "lge:sax+4ch+2ch+3ch",
    "CINE_lax-sax + LGE_lax-sax": "cine:4ch+sax|lge:sax+4ch",
    "CINE_lax-sax + LGE_lax-sax-2ch-3ch": "cine:4ch+sax|lge:sax+4ch+2ch+3ch",
}
FULL_COMBO = PAPER_NAMES["CINE_lax-sax + LGE_lax-sax-2ch-3ch"]

# Names in the paper's style for ablations the paper does not run (experiments/ablation.yaml).
# One name per combo: cine:4ch is CINE_lax (lax = 4ch), never also "CINE_4ch".
ABLATION_NAMES: dict[str, str] = {
    "CINE_lax": "cine:4ch",
    "LGE_sax": "lge:sax",
    "LGE_lax": "lge:4ch",
    "CINE_lax-sax + LGE_sax": "cine:4ch+sax|lge:sax",
}
NAMES: dict[str, str] = {**PAPER_NAMES, **ABLATION_NAMES}


def _canonical(combo: str) -> tuple:
    return tuple(sorted(parse_combo(combo)))


_BY_COMBO: dict[tuple, str] = {}
for _name, _combo in NAMES.items():
    if _canonical(_combo) in _BY_COMBO:
        raise ViewComboError(f"two names for {_combo}: {_BY_COMBO[_canonical(_combo)]} and {_name}")
    _BY_COMBO[_canonical(_combo)] = _name


def paper_name(combo: str) -> str:
    """The paper's (or an ablation's) name for a combo, whatever its view order; the combo
    itself when it has none.  A function: each combo has exactly one name."""
    return _BY_COMBO.get(_canonical(combo), combo)
