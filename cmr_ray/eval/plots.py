"""Evaluation plots as PNG (matplotlib, Agg backend).

    from cmr_ray.eval import plots
    plots.tsne_panels({"Zero-shot": (emb0, labels), "CMR-CLIP (ours)": (emb1, labels)}, "tsne.png")
    plots.recall_curves({"CMR-CLIP (ours)": (t2v_ranks, v2t_ranks)}, "recall_at_k.png")
    plots.confusion(y_true, y_pred, ACDC_CLASSES, "confusion_acdc.png", title="5-class probe")
    plots.rsum_intervals([(8, 178.0, 160.2, 195.1), ...], [("CINE_sax · 8", 126.0, 110.0, 140.0)],
                         "rsum_intervals.png", paper=[(8, 178.5)], references={"Zero-shot": (5.0, 2.0, 9.0)})

t-SNE panels follow the paper's Figures 5 and 6 (test video embeddings coloured by the
5-class label, zero-shot beside trained); studies with an unknown label are grey.
`rsum_intervals` is a sweep's results figure: RSUM against frame count and against view
combination, each point with its 95% bootstrap interval as an error bar.
"""
from __future__ import annotations

import numpy as np

from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval.retrieval import recall_at_k_curve

COLOURS = {"NOR": "#2ca02c", "MINF": "#d62728", "DCM": "#1f77b4", "HCM": "#ff7f0e", "RV": "#9467bd"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 3:
        return np.zeros((n, 2))
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    from cmr_ray.eval.probe import single_thread

    with single_thread():  # see single_thread: thread pools crawl on a busy machine
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def tsne_panels(panels: dict, path, seed: int = 0, title: str = "t-SNE of test video embeddings") -> str:
    """One t-SNE panel per {name: (embeddings [N, D], acdc labels)}."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), squeeze=False)
    for ax, (name, (x, labels)) in zip(axes[0], panels.items()):
        xy = tsne_2d(np.asarray(x, np.float32), seed)
        labels = np.asarray(labels, dtype=object)
        unknown = np.array([lab not in COLOURS for lab in labels], dtype=bool)
        if unknown.any():
            ax.scatter(xy[unknown, 0], xy[unknown, 1], s=10, c="#bbbbbb", label="unknown")
        for cls in ACDC_CLASSES:
            sel = labels == cls
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=12, c=COLOURS[cls], label=f"{cls} ({int(sel.sum())})")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=8, markerscale=1.5)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def recall_curves(ranks: dict, path) -> str:
    """Recall@k against k (log scale) for {method: (t2v_ranks, v2t_ranks)}, one panel per direction."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for j, (ax, direction) in enumerate(zip(axes, ("Text → video", "Video → text"))):
        n = 1
        for name, pair in ranks.items():
            ks, rec = recall_at_k_curve(pair[j])
            n = max(n, len(ks))
            ax.plot(ks, rec, label=name)
        k_all = np.arange(1, n + 1)
        ax.plot(k_all, 100.0 * k_all / n, ls=":", c="grey", label="chance")
        for k in (5, 10, 50):
            ax.axvline(k, c="#dddddd", lw=0.8, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_title(f"{direction} (N = {n})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Recall@k (%)")
    axes[0].set_ylim(0, 101)
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def confusion(y_true, y_pred, classes, path, title: str = "Confusion matrix") -> str:
    """Counts, rows = true class, columns = predicted; each cell annotated."""
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    cm = confusion_matrix(list(y_true), list(y_pred), labels=list(classes))
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def rsum_intervals(by_frames: list, by_views: list, path, paper: list | None = None,
                   references: dict | None = None, title: str = "Test RSUM with 95% bootstrap intervals") -> str | None:
    """RSUM against frame count (left: `by_frames` = [(frames, rsum, lo, hi)], log2 axis, the
    paper's figures `paper` = [(frames, rsum)] dashed) and against view combination (right:
    `by_views` = [(label, rsum, lo, hi)] or [(label, rsum, lo, hi, paper rsum or None)]);
    `references` = {name: (rsum, lo, hi)} as horizontal lines with their band (e.g. Zero-shot).
    A missing lo/hi (NaN or None) draws no bar.  An empty side is left out; nothing to draw
    returns None and writes nothing."""
    panels = [p for p, rows in (("frames", by_frames), ("views", by_views)) if rows]
    if not panels:
        return None
    plt = _plt()
    widths = [5.5 if p == "frames" else max(5.0, 0.75 * len(by_views) + 2.0) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths), 4.8), squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": widths})

    def _err(rows):
        v = np.array([r[1] for r in rows], dtype=np.float64)
        lo = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
        hi = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
        return v, np.nan_to_num(np.vstack([v - lo, hi - v]), nan=0.0).clip(min=0.0)

    for ax, panel in zip(axes[0], panels):
        if panel == "frames":
            rows = sorted(by_frames, key=lambda r: r[0])
            seen: dict = {}
            x = []
            for r in rows:  # rows at the same frame count (another τ or seed) sit side by side
                k = seen[r[0]] = seen.get(r[0], -1) + 1
                x.append(r[0] * 2 ** (0.06 * k))
            v, err = _err(rows)
            ax.errorbar(x, v, yerr=err, fmt="o-", capsize=4, c="#1f77b4", label="this sweep (full combo)")
            if paper:
                pf = sorted(paper)
                ax.plot([f for f, _ in pf], [r for _, r in pf], "s--", c="grey", mfc="none", label="paper, Table 4")
            ax.set_xscale("log", base=2)
            ticks = sorted({r[0] for r in rows} | {f for f, _ in paper or []})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlabel("frames")
            ax.set_title("RSUM against frame count")
        else:
            v, err = _err(by_views)
            x = np.arange(len(by_views))
            ax.errorbar(x, v, yerr=err, fmt="o", capsize=4, c="#d62728", label="this sweep")
            pv = [(i, r[4]) for i, r in enumerate(by_views) if len(r) > 4 and r[4] is not None]
            if pv:
                ax.plot([i for i, _ in pv], [p for _, p in pv], "s", c="grey", mfc="none", label="paper, Table 4")
            ax.set_xticks(x, [r[0] for r in by_views], rotation=35, ha="right", fontsize=8)
            ax.set_xlim(-0.6, len(by_views) - 0.4)
            ax.set_title("RSUM against view combination")
        for j, (name, (val, lo, hi)) in enumerate((references or {}).items()):
            c = ("#2ca02c", "#9467bd", "#8c564b")[j % 3]
            ax.axhline(val, c=c, lw=1, ls=":", label=name)
            if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
                ax.axhspan(lo, hi, color=c, alpha=0.12, lw=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[0][0].set_ylabel("RSUM (R@5+R@10+R@50, both directions)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
