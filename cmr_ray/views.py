"""View combos: what the model sees, and the one place the paper's names map onto them.

A combo is ``sequence:view+view|sequence:view...``, e.g. ``cine:sax+4ch|lge:sax+2ch+3ch``.
Sequences are ``cine`` and ``lge``; views are ``sax``, ``2ch``, ``3ch``, ``4ch``.
Order inside the string is kept: it is the order views are concatenated along the
frame axis (cine first, then LGE, as the paper's Figure 4 does).

The paper (CMRformer, Table 4) names configurations like ``CINE_lax-sax + LGE_lax-sax``:
``lax`` means the three long-axis views (2ch, 3ch, 4ch).  `PAPER_NAMES` maps each name
used in `experiments/views.yaml` onto a combo; `paper_name(combo)` goes back.
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


LAX = "2ch+3ch+4ch"
PAPER_NAMES: dict[str, str] = {
    "CINE_sax": "cine:sax",
    "CINE_4ch": "cine:4ch",
    "CINE_lax": f"cine:{LAX}",
    "CINE_lax-sax": f"cine:sax+{LAX}",
    "LGE_sax": "lge:sax",
    "LGE_lax": f"lge:{LAX}",
    "LGE_lax-sax": f"lge:sax+{LAX}",
    "CINE_lax-sax + LGE_sax": f"cine:sax+{LAX}|lge:sax",
    "CINE_lax-sax + LGE_lax-sax": f"cine:sax+{LAX}|lge:sax+{LAX}",
}


def _canonical(combo: str) -> tuple:
    return tuple(sorted(parse_combo(combo)))


def paper_name(combo: str) -> str:
    """The paper's name for a combo, or the combo itself when the paper has none."""
    key = _canonical(combo)
    for name, c in PAPER_NAMES.items():
        if _canonical(c) == key:
            return name
    return combo
