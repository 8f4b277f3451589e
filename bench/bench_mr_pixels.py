"""Is the mitral regurgitation jet in the stored clips?  A linear probe on raw pixels.

    .venv/bin/python bench/bench_mr_pixels.py --store cmr_store/synthetic-small
    .venv/bin/python bench/bench_mr_pixels.py --store S --synth-seed 5

For a store prepared from the synthetic cohort of `--synth-seed`, labels every stored study
with its draw's MR (`cmr_ray.eval.nuisance.cohort_parameters`: present or not) and fits the
platform's linear probe (`cmr_ray.eval.probe.fit_probe`) on the raw pixels of one stored view:
- cine 4-chamber, phases 1-3: systole, where the jet darkens the left atrium;
- cine 4-chamber, phases 7-9: diastole, no jet;
- LGE 4-chamber: no flow, no jet.
Fitted on train, scored on test (AUC of MR present).  What the diastolic and LGE rows reach
is what the diseases that carry MR give away through the anatomy; the systolic row's margin
over them is the jet.  A tower whose `readout/mr` stays near 0 while this probe finds the
jet has not learned it: the pixels carry it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIEWS = (  # (store slot, which frames of slice 0, label)
    ("cine_4ch", slice(1, 4), "cine 4ch, phases 1-3 (systole)"),
    ("cine_4ch", slice(7, 10), "cine 4ch, phases 7-9 (diastole)"),
    ("lge_4ch", slice(0, 1), "LGE 4ch"),
)


def view_stack(store, params: dict, slot: str, split: str):
    """(slice 0 of every study's `slot`: [studies, frames, H, W] uint8, MR present per study),
    for one split; studies without the view, or not of the cohort, are left out."""
    import numpy as np

    from cmr_ray.data.reader import load_split
    from cmr_ray.data.schema import decode_view

    x, y = [], []
    for row in load_split(store, [slot], split):
        arr = decode_view(row.get(slot), row.get(f"{slot}_shape"))
        if arr is None or row["study_key"] not in params:
            continue
        x.append(arr[0])
        y.append(int(params[row["study_key"]]["mr"] > 0))
    return np.stack(x), np.asarray(y)


def pixels(stack, frames: slice):
    """[studies, pixels] in [0, 1]: the frames `frames` of each study, flattened."""
    import numpy as np

    return stack[:, frames].reshape(len(stack), -1).astype(np.float32) / 255.0


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from cmr_ray.eval.nuisance import cohort_parameters
    from cmr_ray.eval.probe import fit_probe

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--synth-seed", type=int, default=0, help="the cohort's seed (data.synth_seed)")
    args = ap.parse_args()
    params = cohort_parameters(args.store, seed=args.synth_seed)
    stacks = {(slot, split): view_stack(args.store, params, slot, split)  # each view read once
              for slot in dict.fromkeys(v[0] for v in VIEWS) for split in ("train", "test")}
    for slot, frames, label in VIEWS:
        (fit, y_fit), (test, y_test) = stacks[slot, "train"], stacks[slot, "test"]
        probe = fit_probe(pixels(fit, frames), y_fit)
        auc = roc_auc_score(y_test, probe.decision_function(pixels(test, frames)))
        print(f"{label:32s} MR present AUC {auc:.3f}  (train {len(y_fit)}, test {len(y_test)}, "
              f"{y_test.mean():.2f} of test with MR)")


if __name__ == "__main__":
    main()
