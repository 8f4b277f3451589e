"""Did a training run learn?  A verdict from its per-epoch history (pure Python, no Ray).

    from cmr_ray.train.collapse import collapse_verdict, global_batch
    v = collapse_verdict(history, global_batch(cfg))   # history: [{"epoch", "train/loss", "val/video_spread"?}, ...]
    v["learning"]      # 'learned' | 'slow' | 'collapsed'
    v["collapsed"]     # True when 'collapsed'
    v["loss_ratio"]    # final train/loss / ln(batch)

Why (issue 14, "Every trial learns, and the platform notices when one does not"): the
symmetric InfoNCE loss of pairs the model cannot tell apart is ln(number of candidates),
ln(batch) for a batch of distinct impressions.  A run whose train loss stays near ln(batch)
learned nothing, whatever its retrieval metrics say; in the November views sweep 7 of 11
trials ended at 3.462-3.465 = ln 32 and nothing said so.  The states, judged on the final
epoch (so call this on a finished run, past its warm-up):

- `learned`: final train/loss at most `LEARNED_MAX_RATIO` (0.85) × ln(batch), the issue's
  own pass mark for every trial of the main job;
- `slow`: between 0.85 and `COLLAPSED_MIN_RATIO` (0.95) × ln(batch): it has left the
  plateau but not by enough to count;
- `collapsed`: final train/loss at least 0.95 × ln(batch) ("within a few percent of
  ln(batch) after warm-up", the issue's definition), or the validation video embeddings
  have (almost) no spread left: `val/video_spread` below `MIN_VIDEO_SPREAD`.

`val/video_spread` (reported per epoch by `cmr_ray.train.loop.validate`) is the root of the
total variance of the L2-normalised validation video embeddings, sqrt(1 - |mean|²): 0 when
every clip embeds to the same vector, 1 when the embeddings' mean is zero (e.g. isotropic).

`ln(batch)` is approximate where duplicate impressions are masked (`ClipLoss(mask_duplicates=True)`):
a row with k masked duplicates has ln(batch - k) candidates, so a collapsed run's ratio can
sit slightly below 1; the 0.95 mark leaves room for that.
"""
from __future__ import annotations

import math

from cmr_ray.config import Config

LEARNED_MAX_RATIO = 0.85   # issue 14's pass mark: final train/loss <= 0.85 × ln(batch)
COLLAPSED_MIN_RATIO = 0.95  # issue 14's collapse: train/loss within a few percent of ln(batch)
MIN_VIDEO_SPREAD = 0.02    # val/video_spread below this: the video embeddings are one point
STATES = ("learned", "slow", "collapsed")


def global_batch(cfg: Config) -> int:
    """Candidates per InfoNCE row in training: batch_size × accum_steps × workers (before masking)."""
    return cfg.train.batch_size * cfg.train.accum_steps * cfg.train.workers


def loss_ratio(loss: float, batch: int) -> float:
    """`loss` / ln(batch): about 1 when every pair scores alike, 0 for a perfect fit."""
    if batch < 2:
        raise ValueError(f"batch {batch}: the InfoNCE loss needs at least 2 candidates")
    return float(loss) / math.log(batch)


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def ratio_state(ratio: float) -> str:
    """The state (one of STATES) that a final loss / ln(candidates) alone gives."""
    if ratio >= COLLAPSED_MIN_RATIO:
        return "collapsed"
    return "slow" if ratio > LEARNED_MAX_RATIO else "learned"


def collapse_verdict(history: list[dict], batch: int) -> dict:
    """The run's learning state from its per-epoch metrics (ordered or not; judged on the last epoch).

    Returns `learning` (one of STATES), `collapsed` (bool), `loss_ratio` (final epoch),
    `best_loss_ratio`, `video_spread` (final epoch's `val/video_spread`, None if not reported),
    `epoch` (the final one), `batch` and `reason` (one line for a console or a tag).
    Raises ValueError when no epoch has a finite `train/loss`.
    """
    rows = [r for r in history if _num(r.get("train/loss")) is not None]
    if not rows:
        raise ValueError("collapse_verdict: no epoch with a finite train/loss in the history")
    rows.sort(key=lambda r: _num(r.get("epoch")) or 0.0)
    last = rows[-1]
    ratio = loss_ratio(last["train/loss"], batch)
    best = min(loss_ratio(r["train/loss"], batch) for r in rows)
    spread = _num(last.get("val/video_spread"))
    head = f"final train/loss {last['train/loss']:.3f} = {ratio:.2f} × ln {batch}"
    state = ratio_state(ratio)
    if state == "collapsed":
        reason = f"{head} (collapsed at >= {COLLAPSED_MIN_RATIO}: every pair scores alike)"
    elif spread is not None and spread < MIN_VIDEO_SPREAD:
        state, reason = "collapsed", (f"{head}, but val/video_spread {spread:.4f} < {MIN_VIDEO_SPREAD}: "
                                      "the video embeddings are one point")
    elif state == "slow":
        reason = f"{head} (learned needs <= {LEARNED_MAX_RATIO})"
    else:
        reason = head
    epoch = _num(last.get("epoch"))
    return {"learning": state, "collapsed": state == "collapsed", "loss_ratio": ratio, "best_loss_ratio": best,
            "video_spread": spread, "epoch": int(epoch) if epoch is not None else len(rows), "batch": int(batch),
            "reason": reason}


def what_happened(state: str) -> str:
    """The words for a run that did not learn: 'COLLAPSED (learned nothing)' or 'learned too slowly'."""
    return "COLLAPSED (learned nothing)" if state == "collapsed" else "learned too slowly"


def warning_line(run: str, verdict: dict) -> str | None:
    """A console WARNING naming the run, or None when it learned."""
    if verdict["learning"] == "learned":
        return None
    return f"WARNING: run {run} {what_happened(verdict['learning'])} by epoch {verdict['epoch']}: {verdict['reason']}"
