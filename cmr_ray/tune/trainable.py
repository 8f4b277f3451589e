"""One sweep trial, as a Ray Tune function trainable (the Ray 2.60 Train V2 pattern).

    tune.with_resources(tune.with_parameters(run_trial, payloads={key: payload}, train_fn=None, eval_fn=None),
                        {"cpu": 0.1})     # param_space={"key": tune.grid_search([key, ...])}

The trial runs a `TorchTrainer` through `train_fn` (default `cmr_ray.train.run_training`)
with Ray's `TuneReportCallback` in the Train run config, so every epoch's metrics reach
Tune as they happen and a scheduler such as ASHA can stop a weak trial (its Train
controller and workers are owned by this trial's actor and are released with it).  Then
it evaluates the best checkpoint (by `sweep.metric`) with `eval_fn` (default
`cmr_ray.eval.evaluate`), logs the eval tables/plots and the resolved config as the
trial's MLflow artifacts (after checking they hold no report text), and reports the
final metrics with `final=1`.  The driver's MLflow callback logs every metric.

Learning is checked: the final report carries the run's verdict from its per-epoch
history (`cmr_ray.train.collapse`): `learning` ('learned', 'slow' or 'collapsed'),
`learning_reason` (one line), `learning_epoch` and `train/loss_ratio` (final epoch's
train/loss / ln(global batch)); the callback makes them MLflow tags and a WARNING line.
"""
from __future__ import annotations

import inspect
import shutil
import tempfile
from pathlib import Path

from cmr_ray.config import Config, sweep_mode, to_yaml
from cmr_ray.train.trainer import best_checkpoint, evaluated_checkpoint

FINAL = "final"  # result key marking a trial's last report (evaluation done)
HISTORY = "epoch_history"  # in the final report: the epochs the Train run still knows
LEARNING = "learning"  # in the final report: 'learned' | 'slow' | 'collapsed' (cmr_ray.train.collapse)
TEXT_SUFFIXES = (".md", ".csv", ".json", ".txt", ".yaml", ".yml", ".html", ".svg", ".tsv")


def _default_train():
    from cmr_ray.train import run_training

    return run_training


def _default_eval():
    import cmr_ray.eval as ev

    fn = ev.evaluate  # the function; the package also has a submodule of that name
    return fn if callable(fn) else fn.evaluate


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def epoch_history(result) -> list[dict]:
    """Per-epoch metrics of the kept checkpoints and the last report, by epoch.  A driver
    killed after an epoch's checkpoint but before logging it loses that epoch's MLflow
    metrics; the resumed trial sends them again from here."""
    rows = {}
    for m in [m for _, m in (getattr(result, "best_checkpoints", None) or [])] + [dict(result.metrics or {})]:
        if isinstance(m.get("epoch"), (int, float)):
            rows[int(m["epoch"])] = {k: v for k, v in m.items() if isinstance(v, (int, float))}
    return [rows[e] for e in sorted(rows)]


def learning_report(history: list[dict], cfg: Config) -> dict:
    """The final report's learning keys from the per-epoch history; {} when there is no train/loss."""
    from cmr_ray.train.collapse import collapse_verdict, global_batch

    try:
        v = collapse_verdict(history, global_batch(cfg))
    except ValueError:
        return {}
    return {LEARNING: v["learning"], f"{LEARNING}_reason": v["reason"], f"{LEARNING}_epoch": v["epoch"],
            "train/loss_ratio": v["loss_ratio"]}


def store_impressions(store: str, min_len: int = 24) -> list[str]:
    """Every impression text in the store (long enough to be distinctive)."""
    import pyarrow.parquet as pq

    from cmr_ray.data import storefs

    fs, root = storefs.open_store(store)
    texts: set[str] = set()
    for path in storefs.list_files(fs, storefs.join(root, "shards"), ".parquet"):
        with fs.open_input_file(path) as f:
            col = pq.read_table(f, columns=["impression"]).column("impression")
        texts.update(t for t in col.to_pylist() if t and len(t) >= min_len)
    return sorted(texts)


def check_no_report_text(out_dir: str | Path, impressions: list[str], binary: bool = False) -> None:
    """Raise if an artifact under `out_dir` contains a report impression: text files
    (by suffix), or every file's bytes when `binary` (e.g. a pickled model)."""
    needles = [t.encode() for t in impressions]
    for path in sorted(Path(out_dir).rglob("*")):
        if not path.is_file() or not (binary or path.suffix.lower() in TEXT_SUFFIXES):
            continue
        content = path.read_bytes()
        if any(n in content for n in needles):
            raise RuntimeError(f"{path.name}: contains report text; refusing to log it to MLflow")


def check_param_space(config: dict, cfg: Config) -> None:
    """Tune's view of a trial (its `param_space` values) must be the config it runs: raise,
    naming the key, where they differ (`cmr_ray.tune.sweep.param_space` builds both from the
    same trial)."""
    from cmr_ray.config import thaw

    for key, value in config.items():
        if key == "key":
            continue
        section, _, name = key.partition(".")
        ours = thaw(cfg[section][name])
        if ours != value:
            raise RuntimeError(f"trial {config['key']}: Tune's param_space has {key}={value!r} "
                               f"but the trial's config has {ours!r}")


def run_trial(config: dict, payloads: dict, train_fn=None, eval_fn=None) -> None:
    """Train, evaluate the checkpoint `eval.checkpoint` names, log artifacts, report final metrics to Tune."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from cmr_ray import tracking

    t = payloads[config["key"]]
    cfg, metric = t["cfg"], t["metric"]
    check_param_space(config, t["params_cfg"])
    if t.get("log_path"):  # this trial's own output (evaluation progress, warnings) in its file, not the console
        from cmr_ray.console import redirect_process_output

        redirect_process_output(t["log_path"])
    train_fn = train_fn or _default_train()
    eval_fn = eval_fn or _default_eval()

    kwargs = dict(storage_path=t["storage_path"], name=t["train_name"])
    forwarded = _accepts(train_fn, "callbacks")
    if forwarded:
        kwargs["callbacks"] = [TuneReportCallback()]
    result = train_fn(cfg, **kwargs)
    if getattr(result, "error", None):
        raise result.error
    if not forwarded:  # per-epoch metrics only after the fact: no early stopping possible
        df = result.metrics_dataframe
        for row in ([] if df is None else df.to_dict("records")):
            tune.report(row)

    ckpt, scored = evaluated_checkpoint(result, cfg)  # eval.checkpoint: the budget's end or the best epoch
    _, best = best_checkpoint(result, metric, sweep_mode(cfg))
    out = Path(tempfile.mkdtemp(prefix=f"cmr-eval-{t['key']}-"))
    try:
        final = dict(eval_fn(ckpt.path, cfg.data.store, str(out), cfg=cfg) or {})
        (out / "config.yaml").write_text(to_yaml(t["params_cfg"]))
        check_no_report_text(out, store_impressions(cfg.data.store))
        c = tracking.client(t["tracking_uri"])
        c.log_artifact(t["run_id"], str(out / "config.yaml"))
        (out / "config.yaml").unlink()
        if any(out.iterdir()):
            c.log_artifacts(t["run_id"], str(out), artifact_path="eval")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    final[HISTORY] = epoch_history(result)
    final.update(learning_report(final[HISTORY], cfg))
    final.setdefault(metric, scored.get(metric, float("nan")))  # Tune's schedulers expect it in every result
    final[f"best/{metric}"] = best.get(metric, float("nan"))
    final["best/epoch"] = best.get("epoch", -1)
    final["eval/checkpoint_epoch"] = scored.get("epoch", -1)  # the epoch whose checkpoint was scored
    final["checkpoint_path"] = ckpt.path
    final[FINAL] = 1
    tune.report(final)
