"""The driver side of a sweep's MLflow logging: a Ray Tune callback.

Tune calls it on the driver as trials start, report and end, so every MLflow write to the
tracking store comes from one process (a sqlite file is not shared between writers):
per-epoch metrics with `step=epoch`, the final metrics (`test/…`, `probe/…`) when the
trial reports `final=1`, and the run's status (RUNNING, then FINISHED or FAILED).  A
trial stopped early by the scheduler ends FINISHED with the tag `cmr.outcome=stopped_early`.
It also prints one progress line per epoch.

Learning is checked: from the final report's verdict (`run_trial`, `cmr_ray.train.collapse`)
the run gets the tags `cmr.learning` (`learned`, `slow` or `collapsed`) and `cmr.collapsed`
(`1`/`0`), `train/loss_ratio` at the final epoch (logged here if the epochs did not report
it), and the sweep console a WARNING line when the trial collapsed or learned too slowly.
"""
from __future__ import annotations

import time

from ray.tune import Callback

from cmr_ray import tracking
from cmr_ray.tune.trainable import FINAL, HISTORY, LEARNING

SHOWN = ("train/loss", "train/loss_ratio", "val/loss", "val/rsum")
EPOCH_PREFIXES = ("train/", "val/")  # per-epoch keys: never logged again by the final report


def ours(result: dict) -> dict:
    """The platform's metrics (`train/…`, `val/…`, `test/…`, `probe/…`, `epoch`), without the
    keys Tune adds to every result (`time_total_s`, `pid`, `training_iteration` …)."""
    return {k: v for k, v in result.items() if "/" in str(k) or k == "epoch"}


class MlflowTrialCallback(Callback):
    def __init__(self, client, payloads: dict, total: int, skip_upto: dict | None = None, echo=None):
        self.client = client
        self.payloads = payloads            # trial key -> payload (run_id, name, index, ...)
        self.total = total
        self.skip_upto = dict(skip_upto or {})  # trial key -> last epoch already in MLflow
        self.finals: set[str] = set()
        self._echo = echo
        self.started: dict[str, float] = {}

    def echo(self, line: str) -> None:
        if self._echo is None:
            print(line, flush=True)
        else:
            self._echo(line)

    def __getstate__(self):  # Tune pickles its run config; the client and echo stay in the driver
        state = dict(self.__dict__)
        state["_uri"] = self.client.tracking_uri
        state["client"], state["_echo"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.client = tracking.client(state["_uri"])

    def _p(self, trial):
        return self.payloads[trial.config["key"]]

    def _tag(self, p) -> str:
        return f"[{p['index'] + 1}/{self.total}] {p['name']}"

    def on_trial_start(self, iteration, trials, trial, **info):
        p = self._p(trial)
        self.started[p["key"]] = time.time()
        tracking.set_status(self.client, p["run_id"], "RUNNING", tune_trial_id=trial.trial_id)
        self.echo(f"{self._tag(p)}: started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        p = self._p(trial)
        if result.get(FINAL):
            self.finals.add(p["key"])
            for row in result.get(HISTORY) or []:  # epochs a killed driver never logged
                self._log_epoch(p, row)
            final = {k: v for k, v in ours(result).items() if not k.startswith(EPOCH_PREFIXES)}
            tracking.log_metrics(self.client, p["run_id"], final, step=0)
            if result.get("checkpoint_path"):
                self.client.set_tag(p["run_id"], "cmr.checkpoint_path", str(result["checkpoint_path"]))
            shown = {k: result[k] for k in ("test/rsum", "probe/hcm_auc") if k in result}
            self.echo(f"{self._tag(p)}: evaluated " + "  ".join(f"{k}={v:.3f}" for k, v in shown.items()))
            self._learning(p, result)
            return
        epoch = self._log_epoch(p, result)
        if epoch is None:
            return
        shown = "  ".join(f"{k}={result[k]:.3f}" for k in SHOWN if isinstance(result.get(k), (int, float)))
        self.echo(f"{self._tag(p)}: epoch {epoch}  {shown}")

    def _learning(self, p, result) -> None:
        """Tags `cmr.learning`/`cmr.collapsed`, the final `train/loss_ratio`, a WARNING unless learned."""
        state = result.get(LEARNING)
        if state is None:
            return
        self.client.set_tag(p["run_id"], "cmr.learning", str(state))
        self.client.set_tag(p["run_id"], "cmr.collapsed", "1" if state == "collapsed" else "0")
        ratio, epoch = result.get("train/loss_ratio"), result.get(f"{LEARNING}_epoch")
        if isinstance(ratio, (int, float)) and isinstance(epoch, (int, float)) and \
                tracking.max_step(self.client, p["run_id"], "train/loss_ratio") < int(epoch):
            tracking.log_metrics(self.client, p["run_id"], {"train/loss_ratio": ratio}, step=int(epoch))
        if state != "learned":
            from cmr_ray.train.collapse import what_happened

            self.echo(f"{self._tag(p)}: WARNING: {what_happened(state)}: {result.get(f'{LEARNING}_reason', '')}")

    def _log_epoch(self, p, metrics) -> int | None:
        """Log one epoch's metrics with step=epoch, unless that epoch is in MLflow already."""
        epoch = int(metrics.get("epoch", metrics.get("training_iteration", 0)))
        if epoch <= self.skip_upto.get(p["key"], -1):
            return None
        tracking.log_metrics(self.client, p["run_id"], ours(metrics), step=epoch)
        self.skip_upto[p["key"]] = epoch
        return epoch

    def on_trial_complete(self, iteration, trials, trial, **info):
        p = self._p(trial)
        outcome = "completed" if p["key"] in self.finals else "stopped_early"
        secs = time.time() - self.started.get(p["key"], time.time())
        tracking.set_status(self.client, p["run_id"], "FINISHED", outcome=outcome, wall_s=f"{secs:.0f}")
        self.echo(f"{self._tag(p)}: {outcome.replace('_', ' ')} in {secs:.0f} s")

    def on_trial_error(self, iteration, trials, trial, **info):
        p = self._p(trial)
        err = (getattr(trial, "error_file", None) or "see the Tune trial directory")
        tracking.set_status(self.client, p["run_id"], "FAILED", outcome="failed")
        self.echo(f"{self._tag(p)}: FAILED ({err})")
