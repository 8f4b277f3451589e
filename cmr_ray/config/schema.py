"""The experiment config's sections: one frozen, typed dataclass per YAML section.

Each field's default and meaning live here (`help`, shown by `cmr-ray validate --schema`),
with the checks its values get on load (`cmr_ray.config.load`): a kind (int, float, bool,
str, path, combo, choice, list, dict), choices, bounds, and for a few keys a check owned by
the code that uses the value.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from cmr_ray.config.frozen import Section, frozen_section
from cmr_ray.model.sizes import DEFAULT_TEXT_MODEL


@dataclasses.dataclass(frozen=True)
class Field:
    """How one key is checked on load."""

    kind: str  # int, float, bool, str, path, combo, choice, list, dict
    default: Any
    help: str
    choices: Any = ()  # a tuple, or a function giving one (names owned by other code)
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    check: Any = None  # value -> None, or what was expected instead (after the kind's own checks)


def _f(kind, default, help, **kw):
    """A dataclass field whose `metadata["spec"]` is its `Field`."""
    spec = Field(kind, default, help, **kw)
    if isinstance(default, (list, dict)):
        from cmr_ray.config.frozen import freeze

        return dataclasses.field(default_factory=lambda: freeze(default), metadata={"spec": spec})
    return dataclasses.field(default=default, metadata={"spec": spec})


# What the training loop (`cmr_ray.train.loop`) reports every epoch beside the validation
# retrieval metrics, and a sweep may rank checkpoints and trials by.
EPOCH_SCORES = ("val/loss", "val/video_spread", "train/loss", "train/loss_ratio")


def sweep_metrics() -> tuple[str, ...]:
    """The per-epoch metrics every trial logs with its checkpoints, so `sweep.metric` may name
    them: `val/` + each key of `cmr_ray.eval.retrieval.metrics_from_ranks` (val/rsum,
    val/t2v_r5, ...), and `EPOCH_SCORES`."""
    from cmr_ray.eval.retrieval import metrics_from_ranks

    return tuple(f"val/{k}" for k in metrics_from_ranks([1], [1])) + EPOCH_SCORES


def _known(what: str) -> tuple:
    """Names owned by the code that uses them, looked up when a value is checked: probe
    tasks (`cmr_ray.eval.probe.TASKS`), baselines (`cmr_ray.eval.evaluation.BASELINES`),
    per-epoch metrics (`sweep_metrics`)."""
    if what == "probes":
        from cmr_ray.eval.probe import TASKS

        return TASKS
    if what == "baselines":
        from cmr_ray.eval.evaluation import BASELINES

        return BASELINES
    return sweep_metrics()


def _transfer_problem(v) -> str | None:
    """`eval.transfer`'s check, owned by `cmr_ray.eval.transfer.config_problem`."""
    from cmr_ray.eval.transfer import config_problem

    return config_problem(v)


def _external_problem(v) -> str | None:
    """`eval.external`'s check, owned by `cmr_ray.eval.external.config_problem`."""
    from cmr_ray.eval.external import config_problem

    return config_problem(v)


@frozen_section
class DataConfig(Section):
    """`data:` where the studies come from and what the model sees of them."""

    source: str = _f("choice", "synthetic", "'synthetic' (embedded default cohort) or 'dicom' (dicom_dir + reports)", choices=("synthetic", "dicom"))
    dicom_dir: str | None = _f("path", None, "directory of DICOM studies (source: dicom)", nullable=True)
    reports: str | None = _f("path", None, "reports CSV (accession_number, report_text)", nullable=True)
    labels: str | None = _f("path", None, "labels CSV (optional)", nullable=True)
    store: str = _f("path", "cmr_store/synthetic-small", "clip store directory or s3:// URI")
    synth_studies: int = _f("int", 800, "studies in the synthetic cohort", min=10)
    synth_seed: int = _f("int", 0, "seed of the synthetic cohort", min=0)
    synth_protocol: str = _f("choice", "small", "acquisition protocol of the synthetic cohort's studies (cmr_ray.synth.protocol.PROTOCOLS): 'small' (96 px, 10 SAX slices x 12 phases) or 'paper' (256 px, 12 x 25, the paper's Table 2)", choices=("small", "paper"))
    image_size: int = _f("int", 64, "clip frame size in pixels (square, aspect kept by padding)", min=16, max=512)
    views: str = _f("combo", "cine:sax+2ch+3ch+4ch|lge:sax+2ch+3ch+4ch", "view combo, e.g. cine:sax+4ch|lge:sax")
    frames: int = _f("int", 8, "frames sampled from the clip", min=1, max=64)
    sampling: str = _f("choice", "uniform", "how the frames are sampled (cmr_ray.data.clips): 'uniform', the paper's equal segments of the concatenated clip (a segment can straddle two views), or 'per_view', each view a quota of the frames in proportion to its length, the same segment rule inside it", choices=("uniform", "per_view"))
    val_fraction: float = _f("float", 0.1, "fraction of patients in the validation split", min=0.0, max=0.5)
    test_fraction: float = _f("float", 0.25, "fraction of patients in the test split", min=0.0, max=0.5)
    clip_percentiles: list = _f("list", [1.0, 99.0], "intensity percentiles clipped per series")


@frozen_section
class ModelConfig(Section):
    """`model:` the video and text towers and the contrastive loss."""

    video: str = _f("choice", "timesformer", "video tower", choices=("timesformer", "framemean"))
    size: str = _f("choice", "custom", "video tower size: 'custom' (hidden_size, layers, heads, patch_size below; temporal embedding for data.frames) or 'vit_b16' (the paper's ViT-B/16: 768 wide, 12 layers, 12 heads, patch 16, 64 frames, whatever those keys say)", choices=("custom", "vit_b16"))
    hidden_size: int = _f("int", 128, "video tower width", min=8)
    layers: int = _f("int", 2, "video tower depth", min=1)
    heads: int = _f("int", 4, "attention heads", min=1)
    patch_size: int = _f("int", 16, "patch size in pixels", min=2)
    input_norm: str = _f("choice", "clip", "standardise each clip to zero mean, unit variance before the video tower ('none': raw [0, 1] grey levels)", choices=("clip", "none"))
    temporal_init: str = _f("choice", "random", "the video tower's temporal attention output at start: 'random', or 'zero' (each layer's temporal branch adds nothing at step 0, TimeSformer's recipe from image weights)", choices=("random", "zero"))
    pool: str = _f("choice", "cls", "video pooling: the CLS token or the mean of patch tokens", choices=("cls", "mean"))
    text_model: str = _f("str", DEFAULT_TEXT_MODEL, f"Hugging Face encoder name or local path; {DEFAULT_TEXT_MODEL!r} is the packaged offline MiniLM")
    text_max_length: int = _f("int", 128, "token limit (capped at the model's own)", min=8)
    embed_dim: int = _f("int", 128, "shared embedding dimension", min=8)
    temperature: float = _f("float", 0.05, "InfoNCE temperature (initial value when learnable)", min=0.001, max=10.0)
    learn_temperature: bool = _f("bool", False, "learn the logit scale (clamped at 100)")
    freeze_text: bool = _f("bool", True, "freeze the text encoder")
    freeze_video: bool = _f("bool", False, "freeze the video encoder")
    grad_checkpointing: bool = _f("bool", False, "gradient checkpointing in the video tower")
    video_init: str = _f("str", "", "video tower start: a Hugging Face name (local cache only) or local directory of a ViT or TimeSformer checkpoint of the tower's width, depth, heads and patch size; '' for random weights")
    head: str = _f("choice", "linear", "projection heads: 'linear' (no bias) or 'relu_linear' (ReLU then Linear with bias, the authors' code)", choices=("linear", "relu_linear"))


@frozen_section
class TrainConfig(Section):
    """`train:` the optimiser, its budget, and the Ray Train run."""

    epochs: int = _f("int", 20, "training epochs (when train.steps is 0)", min=1)
    steps: int = _f("int", 0, "optimizer steps in all (0: train.epochs full epochs); the last epoch stops when they are spent", min=0)
    batch_size: int = _f("int", 64, "batch per worker", min=2)
    accum_steps: int = _f("int", 1, "contrastive gradient accumulation steps (cached embeddings)", min=1)
    lr: float = _f("float", 5e-4, "AdamW learning rate", min=0.0)
    text_lr: float = _f("float", 0.0, "AdamW learning rate of the text encoder when it trains (model.freeze_text false); 0: train.lr", min=0.0)
    weight_decay: float = _f("float", 0.05, "AdamW weight decay", min=0.0)
    warmup_fraction: float = _f("float", 0.1, "fraction of steps in linear warm-up", min=0.0, max=1.0)
    workers: int = _f("int", 1, "Ray Train workers", min=1)
    cpus_per_worker: float = _f("float", 1.0, "CPUs per Ray Train worker", min=0.01)
    use_gpu: bool = _f("bool", False, "one GPU per worker")
    precision: str = _f("choice", "auto", "autocast of the training forward: 'auto' (bf16 on a GPU, fp32 on a CPU), 'bf16' (on either; fast on CPUs with bf16 instructions) or 'fp32'", choices=("auto", "fp32", "bf16"))
    seed: int = _f("int", 0, "training seed", min=0)
    cache_split_mb: float = _f("float", 2048.0, "keep a split's pruned columns in Ray's object store when they fit (MB; 0: read every epoch)", min=0.0)
    torch_threads: int = _f("int", 0, "torch intra-op threads per worker (0: Ray's default)", min=0)
    mask_duplicate_impressions: bool = _f("bool", True, "do not count identical impressions as negatives")
    augment: bool = _f("bool", True, "anatomically sane augmentation (no left-right flip)")
    hflip: bool = _f("bool", False, "allow left-right flip (mirrors the heart; off by default)")
    augment_on: str = _f("choice", "cpu", "where training augmentation runs: 'cpu' (the data tasks) or 'device' (the model's device, on the uint8 batch; the CPU only draws the parameters)", choices=("cpu", "device"))
    storage_path: str = _f("path", "ray_results", "Ray Train/Tune storage (local dir or s3://)")
    name: str = _f("str", "cmr-clip", "run name; a run with the same name and storage resumes")
    keep_checkpoints: int = _f("int", 2, "checkpoints kept, by validation RSUM", min=1)
    max_failures: int = _f("int", 2, "worker failures tolerated (restart from last checkpoint)", min=0)


@frozen_section
class EvalConfig(Section):
    """`eval:` what a trained model is scored on: retrieval, probes, few-shot, transfer sets."""

    checkpoint: str = _f("choice", "best", "which checkpoint of a training run is scored: 'best' (highest sweep.metric on validation, "
                         "in sweep.mode's order) or 'last' (the end of the training budget)", choices=("best", "last"))
    probes: list = _f("list", ["nicm", "icm", "amyl", "hcm", "acdc"], "labels probed on frozen video embeddings",
                      choices=lambda: _known("probes"))
    few_shot: list = _f("list", [1, 2, 4, 8, 16], "examples per class for few-shot probes ([]: none)", min=1)
    few_shot_seeds: int = _f("int", 3, "seeds averaged per few-shot size", min=1)
    prototype_shots: list = _f("list", [1, 4, 16], "examples per class for few-shot by class prototypes, nearest "
                               "prototype by cosine, findings and diagnoses (cmr_ray/eval/prototypes.py; []: none)", min=1)
    prototype_episodes: int = _f("int", 1000, "episodes drawn per prototype few-shot size; mean and std reported", min=1)
    prototype_seed: int = _f("int", 0, "seed of the prototype episodes (the same draws for every model)", min=0)
    zero_shot_prompts: bool = _f("bool", True, "CLIP-style zero-shot classification by text prompts")
    baselines: list = _f("list", ["zeroshot"], "baselines through the same probe: zeroshot, simclr",
                         choices=lambda: _known("baselines"))
    plots: bool = _f("bool", True, "write t-SNE, recall@k and confusion plots")
    chunk_size: int = _f("int", 4096, "rows per similarity chunk", min=1)
    batch_size: int = _f("int", 32, "clips per embedding batch", min=1)
    simclr_temperature: float = _f("float", 0.1, "NT-Xent temperature of the SimCLR baseline", min=0.001)
    simclr_noise: float = _f("float", 8.0, "SD in grey levels (of 255) of the Gaussian noise added to each SimCLR view, "
                             "independently per pixel and frame, so the two views cannot be matched by their shared noise "
                             "(cmr_ray/eval/simclr.py; 0: none)", min=0.0)
    simclr_crop: float = _f("float", 1.0, "smallest fraction of the frame's area a SimCLR view keeps: each view is "
                            "a random square crop of [simclr_crop, 1] of the area at a random place inside the frame, "
                            "the same for all its frames, resized back (SimCLR's random resized crop; 1: none)",
                            min=0.05, max=1.0)
    simclr_head_bn: bool = _f("bool", True, "batch norm before the ReLU of the SimCLR projection head "
                              "(Linear-BN-ReLU-Linear over both views' batch, as in Chen et al.'s code); without it "
                              "the head's ReLUs can all die, a fixed point at ln(2B - 1) (cmr_ray/eval/simclr.py)")
    readouts: bool = _f("bool", True, "on a synthetic cohort's store (data.source: synthetic), read the cohort's own "
                        "draws (field of view, noise, vendor, body, fat; LV size, wall, EF, RV, diagnosis) out of the "
                        "frozen video embeddings: readout/<name>, R² or accuracy (cmr_ray/eval/nuisance.py)")
    bootstrap: int = _f("int", 1000, "resamples of the test studies for the 95% intervals (_lo, _hi) of every "
                        "test and probe metric (0: none)", min=0)
    transfer: dict = _f("dict", {}, "public transfer sets: name -> clip store (`prepare --format acdc`) or 'synthetic' "
                        "(the ACDC-layout stand-in, built once); 5-class probe on cine SAX (cmr_ray/eval/transfer.py)",
                        check=_transfer_problem)
    external: str = _f("str", "", "another site's clip store, or 'synthetic' (the other-site synthetic cohort, built "
                       "once beside data.store); every model scored there, nothing fitted there: keys external/... "
                       "(cmr_ray/eval/external.py; '': none)", check=_external_problem)
    external_studies: int = _f("int", 150, "studies in the synthetic external cohort (eval.external: synthetic)", min=10)


@frozen_section
class SweepConfig(Section):
    """`sweep:` the trials of an experiment, how Tune runs them, and what MLflow records."""

    experiment: str = _f("str", "", "MLflow experiment name (default: the file's stem)")
    grid: dict = _f("dict", {}, "dotted key -> list of values; the cartesian product is swept")
    trials: list = _f("list", [], "explicit trials: list of {dotted key: value}; combined with grid")
    seeds: list = _f("list", [], "training seeds: every row (trial × grid point) runs once per seed with train.seed "
                     "set to it, each its own child run; the report pools a row's seeds ([]: train.seed only)", min=0)
    max_concurrent: int = _f("int", 0, "concurrent trials (0: from the cluster's CPUs/GPUs)", min=0)
    trial_cpus: float = _f("float", 0.1, "CPUs reserved by each trial's driver function", min=0.0)
    scheduler: str = _f("choice", "none", "early stopping", choices=("none", "asha"))
    metric: str = _f("choice", "val/rsum", "per-epoch metric that picks each trial's best checkpoint, the best "
                     "trial and ASHA's stops (val/rsum, val/loss, val/t2v_r5, ...)", choices=lambda: _known("metrics"))
    mode: str = _f("choice", "auto", "whether sweep.metric is better high (max) or low (min); auto: min for "
                   "losses and ranks (loss, medr, meanr), max otherwise", choices=("auto", "max", "min"))
    register_model: str = _f("str", "cmr-clip", "registered model name for the best trial ('' to skip)")
    baselines: list = _f("list", [], "baselines computed once per sweep, each a child run: zeroshot, simclr",
                         choices=lambda: _known("baselines"))
    baseline_trial: dict = _f("dict", {}, "dotted key -> value over the experiment's config for the baselines, "
                              "like one trial (e.g. {data.frames: 16})")
    search: dict = _f("dict", {}, "dotted key -> one of Ray Tune's distributions, {loguniform: [lo, hi]}, "
                      "{uniform: [lo, hi]}, {randint: [lo, hi]} or {choice: [values]}; drawn sweep.num_samples "
                      "times, each draw combined with every trial and grid point (cmr_ray/config/search.py)")
    num_samples: int = _f("int", 1, "draws of sweep.search (more than 1 needs sweep.search)", min=1)
    search_seed: int = _f("int", 0, "seed of the sweep.search draws: the same file draws the same trials", min=0)


SECTION_TYPES: dict[str, type[Section]] = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig, "sweep": SweepConfig,
}
SECTIONS = tuple(SECTION_TYPES)

# section -> key -> Field: what `cmr_ray.config.load` checks every value against
SCHEMA: dict[str, dict[str, Field]] = {
    name: {f.name: f.metadata["spec"] for f in dataclasses.fields(cls)} for name, cls in SECTION_TYPES.items()
}


@frozen_section
class Config(Section):
    """A resolved, validated experiment config: `cfg.data`, `cfg.model`, `cfg.train`,
    `cfg.eval`, `cfg.sweep`, each frozen and typed.  Made by `cmr_ray.config.load_config`."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    sweep: SweepConfig

    def with_overrides(self, overrides: dict, src: str = "config") -> Config:
        """A validated copy with dotted keys changed: `cfg.with_overrides({"data.frames": 16})`.
        Bad keys or values raise `ConfigError` (one line each, naming `src` and the key)."""
        from cmr_ray.config.load import apply_overrides

        return apply_overrides(self, overrides, src=src)

    def replace(self, key: str, value) -> Config:
        """A validated copy with one dotted key changed: `cfg.replace("data.store", "/abs/store")`."""
        return self.with_overrides({key: value})


def metric_mode(metric: str) -> str:
    """'min' for a metric that is better low (a loss, a median or mean rank), else 'max'."""
    return "min" if metric.endswith(("loss", "loss_ratio", "medr", "meanr")) else "max"


def sweep_mode(cfg: Config) -> str:
    """`sweep.mode`, or when it is 'auto' the mode that suits `sweep.metric` (`metric_mode`)."""
    mode = cfg["sweep"].get("mode", "auto")
    return metric_mode(cfg["sweep"]["metric"]) if mode == "auto" else mode
