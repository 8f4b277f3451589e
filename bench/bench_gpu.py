"""One training step of the paper-preset model on one device: throughput, memory, MFU.

    python bench/bench_gpu.py                         # CUDA, paper sizes, 8/16/32/64 frames, checkpointing on/off
    python bench/bench_gpu.py --frames 16 --ckpt off  # one row
    python bench/bench_gpu.py --device cpu --toy      # toy sizes on the CPU (what the tests run; < 1 min)
    python bench/bench_gpu.py --video-init DIR --text-model DIR   # real checkpoints (default: random weights)

Needs only `cmr_ray.model` (torch, transformers): no Ray, MLflow or pydicom.  The model is
the paper preset's: a ViT-B/16 divided space-time tower at 224 px (up to 64 frames), a
BERT-base text tower that trains (Bio_ClinicalBERT's sizes; random unless --text-model),
ReLU+Linear heads to 512, the CLIP loss, backward and an AdamW step (text tower at a tenth
of the rate), bf16 autocast on CUDA (fp32 on the CPU).

The input path is training's: uint8 clips [B, F, H, W] in pinned host memory, copied to the
device on a side stream one step ahead (non-blocking), then on the device: to [0, 1],
augmented (one random rotation/scale/shift per clip via `affine_grid`/`grid_sample`, the
frames as channels so every frame moves alike; gamma, contrast and brightness jitter), and
standardised by the tower.  `wait` is the share of step time the compute stream spends
waiting for its batch's copy.  Reports are tokenised on the host every step, as training does.

Per row (frames x gradient checkpointing): the largest per-device batch that fits (doubling
from --start-batch until out of memory or --max-batch, then bisecting back; on the CPU,
--max-batch), and at that
batch: samples/s, step time (CUDA events between consecutive step ends, median over
--steps after --warmup; perf_counter on the CPU), peak memory, and MFU = model FLOPs of one
step (forward + backward, counted by `torch.utils.flop_counter.FlopCounterMode` at a small
batch with checkpointing off and scaled to the row's batch, so recomputation is not
credited) / step time / the matrix rate measured in this run (a large bf16 matmul; fp32 on
the CPU).  Last, a projection of one paper-scale pretraining run (13,786 studies, 64
frames, 100 epochs) in device-hours from the best 64-frame row, and the table.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import statistics
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from cmr_ray.model.clip import CMRClip  # noqa: E402
from cmr_ray.model.loss import ClipLoss  # noqa: E402
from cmr_ray.model.sizes import PAPER_IMAGE_SIZE, PAPER_VIDEO  # noqa: E402
from cmr_ray.model.text import TextTower, mean_pool  # noqa: E402
from cmr_ray.model.video import TimesformerTower  # noqa: E402

PAPER_STUDIES, PAPER_EPOCHS = 13_786, 100
SIZES = {
    "paper": dict(image_size=PAPER_IMAGE_SIZE, **PAPER_VIDEO, embed_dim=512, text_hidden=768, text_layers=12,
                  text_heads=12, text_vocab=28996, text_tokens=128),
    "toy": dict(image_size=32, patch_size=16, hidden_size=32, layers=1, heads=2, max_frames=64, embed_dim=16,
                text_hidden=32, text_layers=1, text_heads=2, text_vocab=1000, text_tokens=16),
}


class RandomTextTower(nn.Module):
    """A BERT of the given sizes with random weights and a stand-in tokenizer (words hashed
    to ids, every report padded or cut to `tokens`): the text cost without a checkpoint."""

    def __init__(self, hidden: int, layers: int, heads: int, vocab: int, tokens: int):
        super().__init__()
        from transformers import BertConfig, BertModel

        conf = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=4 * hidden, max_position_embeddings=max(512, tokens))
        self.encoder = BertModel(conf, add_pooling_layer=False)
        self.name, self.max_length, self.dim, self.vocab = "random-bert", tokens, hidden, vocab

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = self.encoder.embeddings.word_embeddings.weight.device
        rows = []
        for t in texts:
            ids = [2 + zlib.crc32(w.encode()) % (self.vocab - 2) for w in t.split()][: self.max_length - 2]
            ids = [1] + ids + [0] * (self.max_length - 2 - len(ids)) + [1]
            rows.append(ids)
        ids = torch.tensor(rows, device=device)
        mask = (ids != 0).long()
        return mean_pool(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def build(args, sizes: dict, device) -> CMRClip:
    torch.manual_seed(0)
    video = TimesformerTower(image_size=sizes["image_size"], patch_size=sizes["patch_size"],
                             hidden_size=sizes["hidden_size"], layers=sizes["layers"], heads=sizes["heads"],
                             max_frames=sizes["max_frames"], input_norm="clip")
    if args.video_init:
        from cmr_ray.model.vit_init import load_video_init

        load_video_init(video, args.video_init)
    if args.text_model:
        text = TextTower(args.text_model, max_length=sizes["text_tokens"])
    else:
        text = RandomTextTower(sizes["text_hidden"], sizes["text_layers"], sizes["text_heads"],
                               sizes["text_vocab"], sizes["text_tokens"])
    model = CMRClip(video, text, embed_dim=sizes["embed_dim"], temperature=0.05, learn_temperature=True,
                    freeze_text=False, head="relu_linear")
    return model.to(device)


def make_optimizer(model: CMRClip, lr: float = 1e-4, text_lr: float = 1e-5):
    text = {id(p) for p in model.text.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in text], "lr": lr},
              {"params": [p for p in model.text.parameters()], "lr": text_lr}]
    return torch.optim.AdamW(groups, weight_decay=0.05, fused=next(model.parameters()).is_cuda)


def device_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """uint8 [B, F, H, W] on the device -> float [B, F, H, W] in [0, 1], augmented per clip
    (the same transform for every frame; no flip) as cmr_ray.train.augment does on the host."""
    x = x.float().div_(255.0)
    b, dev = x.shape[0], x.device

    def u(lo, hi, *shape):
        return torch.rand(b, *shape, device=dev, generator=gen) * (hi - lo) + lo

    ang, scale = u(-math.radians(10), math.radians(10)), u(0.95, 1.05)
    shift = u(-0.12, 0.12, 2)  # +-6% of the size; affine_grid spans [-1, 1]
    cos, sin = ang.cos() / scale, ang.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = u(math.log(0.8), math.log(1.25)).exp()[:, None, None, None]
    contrast, bright = u(0.9, 1.1)[:, None, None, None], u(-0.05, 0.05)[:, None, None, None]
    return ((x.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5 + bright).clamp_(0, 1)


class Runner:
    """Runs training steps at one (batch, frames) with the input path of training."""

    def __init__(self, model, opt, device, sizes, batch, frames):
        self.model, self.opt, self.device = model, opt, device
        self.cuda = device.type == "cuda"
        s = sizes["image_size"]
        g = torch.Generator().manual_seed(batch * 100 + frames)
        self.host = [torch.randint(0, 256, (batch, frames, s, s), dtype=torch.uint8, generator=g) for _ in range(2)]
        if self.cuda:
            self.host = [h.pin_memory() for h in self.host]
            self.copy_stream = torch.cuda.Stream(device)
        self.gen = torch.Generator(device=device).manual_seed(0)
        words = sizes["text_tokens"] + 8
        self.texts = [" ".join(f"w{(i * 7 + j) % 97}" for j in range(words)) for i in range(batch)]
        self.ids = torch.arange(batch, device=device)
        self.loss_fn = ClipLoss(mask_duplicates=False, gather=False)
        self.autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.cuda
                         else (lambda: torch.autocast("cpu", enabled=False)))
        self.i = 0
        self.pending = self._fetch()

    def _fetch(self):
        host = self.host[self.i % 2]
        self.i += 1
        if not self.cuda:
            return host.clone(), None
        with torch.cuda.stream(self.copy_stream):
            x = host.to(self.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(self.copy_stream)
        return x, ev

    def forward_backward(self, x_u8):
        x = device_augment(x_u8, self.gen)
        with self.autocast():
            v, t, scale = self.model(x, self.texts)
        loss = self.loss_fn(v.float(), t.float(), scale, self.ids)
        loss.backward()
        return loss

    def step(self, events=None):
        """One step; with `events` (start, ready, end CUDA events) the wait is recorded."""
        x, ev = self.pending
        if self.cuda:
            stream = torch.cuda.current_stream(self.device)
            if events:
                events[0].record(stream)
            stream.wait_event(ev)
            x.record_stream(stream)
            if events:
                events[1].record(stream)
        self.pending = self._fetch()  # the next batch's copy overlaps this step
        self.forward_backward(x)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.model.clamp_logit_scale_()
        if events:
            events[2].record(torch.cuda.current_stream(self.device))


def _oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def _cleanup(model, opt, device):
    opt.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def fits(model, opt, device, sizes, batch, frames) -> bool:
    ok = True
    try:
        r = Runner(model, opt, device, sizes, batch, frames)
        r.step(), r.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        if not _oom(e):
            raise
        ok = False
    r = None
    _cleanup(model, opt, device)
    return ok


def largest_batch(model, opt, device, sizes, frames, start, cap) -> int:
    """Doubling from `start` until out of memory (or `cap`), then bisect between the last
    batch that fit and the first that did not (two rounds)."""
    b, good, bad = start, 0, None
    while b <= cap:
        if fits(model, opt, device, sizes, b, frames):
            good, b = b, b * 2
        else:
            bad = b
            break
    if not good:  # even `start` did not fit: halve down
        b = start // 2
        while b >= 1 and not fits(model, opt, device, sizes, b, frames):
            b //= 2
        return max(b, 0)
    for _ in range(2):
        if bad is None or bad - good <= 1:
            break
        mid = (good + bad) // 2
        if fits(model, opt, device, sizes, mid, frames):
            good = mid
        else:
            bad = mid
    return good


def step_flops(model, opt, device, sizes, frames, batch: int = 2) -> float:
    """Model FLOPs of forward + backward at `batch`, per sample (checkpointing off)."""
    from torch.utils.flop_counter import FlopCounterMode

    ck = model.video.grad_checkpointing
    model.video.grad_checkpointing = False
    r = Runner(model, opt, device, sizes, batch, frames)
    x, _ = r.pending
    if r.cuda:
        torch.cuda.synchronize(device)
    counter = FlopCounterMode(display=False)
    with counter:
        r.forward_backward(x)
    opt.zero_grad(set_to_none=True)
    model.video.grad_checkpointing = ck
    return counter.get_total_flops() / batch


def matmul_rate(device) -> tuple[float, str]:
    """FLOP/s of a large square matmul: bf16 8192 on CUDA, fp32 1024 on the CPU."""
    if device.type == "cuda":
        n, dtype, iters = 8192, torch.bfloat16, 30
    else:
        n, dtype, iters = 1024, torch.float32, 5
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        t0.record()
        for _ in range(iters):
            a @ b
        t1.record()
        torch.cuda.synchronize(device)
        secs = t0.elapsed_time(t1) / 1e3
    else:
        t = time.perf_counter()
        for _ in range(iters):
            a @ b
        secs = time.perf_counter() - t
    return 2 * n ** 3 * iters / secs, f"{str(dtype).replace('torch.', '')} {n}x{n}"


def measure(model, opt, device, sizes, batch, frames, warmup, steps) -> dict:
    r = Runner(model, opt, device, sizes, batch, frames)
    for _ in range(warmup):
        r.step()
    step_s, wait_s = [], []
    if r.cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        evs = [[torch.cuda.Event(enable_timing=True) for _ in range(3)] for _ in range(steps + 1)]
        for e in evs:
            r.step(e)
        torch.cuda.synchronize(device)
        for prev, cur in zip(evs, evs[1:]):
            step_s.append(prev[2].elapsed_time(cur[2]) / 1e3)
            wait_s.append(cur[0].elapsed_time(cur[1]) / 1e3)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        for _ in range(steps):
            t0 = time.perf_counter()
            x, _ = r.pending  # the CPU has no copy to wait for: the wait is taking the batch
            r.pending = r._fetch()
            t1 = time.perf_counter()
            r.forward_backward(x)
            opt.step()
            opt.zero_grad(set_to_none=True)
            model.clamp_logit_scale_()
            t2 = time.perf_counter()
            step_s.append(t2 - t0), wait_s.append(t1 - t0)
        peak = 0
    step = statistics.median(step_s)
    return {"step_s": step, "wait_frac": statistics.median(wait_s) / step, "peak_gib": peak / 2 ** 30,
            "samples_per_s": batch / step}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--toy", action="store_true", help="toy sizes (CPU tests)")
    ap.add_argument("--frames", default="8,16,32,64")
    ap.add_argument("--ckpt", default="on,off", help="gradient checkpointing: on, off or on,off")
    ap.add_argument("--start-batch", type=int, default=None)
    ap.add_argument("--max-batch", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--video-init", default="", help="ViT/TimeSformer checkpoint for the video tower (local)")
    ap.add_argument("--text-model", default="", help="text encoder (local; default: random BERT of its sizes)")
    ap.add_argument("--text-tokens", type=int, default=None, help="tokens per report")
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(1)  # the toy run shares its CPU; one thread is fastest there
    sizes = dict(SIZES["toy" if args.toy else "paper"])
    if args.text_tokens:
        sizes["text_tokens"] = args.text_tokens
    cpu = device.type == "cpu"
    start = args.start_batch or (2 if cpu else 4)
    cap = args.max_batch or (4 if cpu else 512)
    warmup = args.warmup if args.warmup is not None else (1 if cpu else 3)
    steps = args.steps or (2 if cpu else 8)
    frames_list = [int(f) for f in args.frames.split(",")]
    ckpts = [c.strip() == "on" for c in args.ckpt.split(",")]
    t_start = time.perf_counter()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rate, rate_what = matmul_rate(device)
    import transformers

    print(f"[bench_gpu] {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}  device {name}  "
          f"torch {torch.__version__}  transformers {transformers.__version__}", flush=True)
    print(f"[bench_gpu] sizes {'toy' if args.toy else 'paper'}: {sizes}; video_init {args.video_init or 'random'}, "
          f"text {args.text_model or 'random BERT'}", flush=True)
    print(f"[bench_gpu] matrix rate ({rate_what}): {rate / 1e12:.3g} TFLOP/s", flush=True)

    model = build(args, sizes, device)
    opt = make_optimizer(model)
    rows = []
    for frames in frames_list:
        flops = step_flops(model, opt, device, sizes, frames)
        _cleanup(model, opt, device)
        for ck in ckpts:
            model.video.grad_checkpointing = ck
            # the CPU never runs out of memory: its batch is --max-batch
            b = cap if cpu else largest_batch(model, opt, device, sizes, frames, start, cap)
            if b < 1:
                print(f"[bench_gpu] {frames} frames, checkpointing {'on' if ck else 'off'}: batch 1 does not fit",
                      flush=True)
                continue
            m = measure(model, opt, device, sizes, b, frames, warmup, steps)
            _cleanup(model, opt, device)
            m.update(frames=frames, ckpt=ck, batch=b, tflop_per_step=flops * b / 1e12,
                     mfu=flops * b / m["step_s"] / rate)
            rows.append(m)
            print(f"[bench_gpu] {frames} frames, ckpt {'on' if ck else 'off'}: batch {b}, "
                  f"{m['samples_per_s']:.1f} samples/s, MFU {100 * m['mfu']:.1f}%", flush=True)
    best64 = max((r for r in rows if r["frames"] == 64), key=lambda r: r["samples_per_s"], default=None)
    if best64:
        hours = PAPER_STUDIES * PAPER_EPOCHS / best64["samples_per_s"] / 3600
        print(f"[bench_gpu] projection: {PAPER_STUDIES} studies x {PAPER_EPOCHS} epochs at 64 frames = "
              f"{hours:.1f} device-hours on one {name} (batch {best64['batch']}, ckpt "
              f"{'on' if best64['ckpt'] else 'off'}; DDP scaling not included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "matrix_flops": rate, "sizes": sizes,
                                               "rows": rows}, indent=1))
    print(f"[bench_gpu] done in {time.perf_counter() - t_start:.0f} s\n")
    head = f"{'frames':>6} {'ckpt':>4} {'batch':>5} {'samples/s':>9} {'step ms':>8} {'peak GiB':>8} " \
           f"{'TFLOP/step':>10} {'MFU %':>6} {'wait %':>6}"
    print(head)
    for r in rows:
        print(f"{r['frames']:>6} {'on' if r['ckpt'] else 'off':>4} {r['batch']:>5} {r['samples_per_s']:>9.1f} "
              f"{1e3 * r['step_s']:>8.1f} {r['peak_gib']:>8.2f} {r['tflop_per_step']:>10.3f} "
              f"{100 * r['mfu']:>6.1f} {100 * r['wait_frac']:>6.1f}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
