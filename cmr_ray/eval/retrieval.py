"""Text-to-video and video-to-text retrieval metrics with pessimistic ties, in bounded memory.

    from cmr_ray.eval.retrieval import retrieval_metrics, retrieval_metrics_from_embeddings
    m = retrieval_metrics(sim)                       # sim[i, j] = sim(text i, video j)
    m = retrieval_metrics_from_embeddings(text_emb, video_emb, chunk_size=4096)
    m["t2v_r5"], m["v2t_medr"], m["rsum"]

Ground truth is the diagonal: text i belongs with video i.  The rank of a query's true
match is 1 + the number of *other* candidates whose score is >= the true score, so a tie
never counts in the query's favour (a constant matrix gives every query rank N).
Recalls are percentages; `rsum` = R@5 + R@10 + R@50 in both directions (the paper's
Table 4).  Both entry points work in row chunks: the temporaries are chunk_size x N, and
`retrieval_metrics_from_embeddings` never holds an N x N similarity matrix at all (the
v2t ranks come from a second, transposed pass over video chunks).  Pure numpy.

Recall@K depends on the gallery size N: a ranking that knows nothing puts the true match at
a rank uniform on 1..N, so its R@K is 100 min(K, N) / N per direction, and its RSUM
`chance_rsum(N)` = 2 x 100 (5 + 10 + 50) / N for N >= 50 (64.4 at 202 studies, 86.7 at 150).
RSUMs of two sets of different sizes are compared at one size: `subset_retrieval_metrics`
averages the metrics over seeded random subsets of the larger set, each of the smaller
one's size and ranked within itself (a subset of all N studies is the whole set, so then
it is exactly `retrieval_metrics_from_embeddings`).
"""
from __future__ import annotations

import numpy as np

KS = (1, 5, 10, 50)
RSUM_KS = (5, 10, 50)


def _check_square(similarity) -> np.ndarray:
    sim = np.asarray(similarity)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise ValueError(f"similarity: expected a non-empty square [N, N] matrix, got shape {sim.shape}")
    if not np.issubdtype(sim.dtype, np.number):
        raise ValueError(f"similarity: expected numbers, got dtype {sim.dtype}")
    return sim


def _chunk_ranks(scores: np.ndarray, true_cols: np.ndarray) -> np.ndarray:
    """Ranks for a block of queries: scores [c, N], true_cols[r] = column of query r's match."""
    true = scores[np.arange(len(scores)), true_cols]
    if not np.all(np.isfinite(true)) or not np.all(np.isfinite(scores)):
        raise ValueError("similarity: contains NaN or infinite values; cannot rank")
    # Counts the true candidate itself (score >= itself), i.e. 1 + others with score >= true.
    return (scores >= true[:, None]).sum(axis=1).astype(np.int64)


def retrieval_ranks(similarity, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(t2v_ranks, v2t_ranks), 1-based, pessimistic ties; temporaries are chunk_size x N."""
    sim = _check_square(similarity)
    # text queries rank videos (rows); video queries rank texts (columns)
    return _ranks_in_chunks(sim.shape[0], chunk_size, lambda a, b: sim[a:b], lambda a, b: sim[:, a:b].T)


def _ranks_in_chunks(n: int, chunk_size: int, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Ranks from similarity rows a:b (`rows(a, b)`) and transposed columns a:b (`cols(a, b)`)."""
    chunk_size = max(1, int(chunk_size))
    t2v = np.empty(n, np.int64)
    v2t = np.empty(n, np.int64)
    for a in range(0, n, chunk_size):
        b = min(n, a + chunk_size)
        idx = np.arange(a, b)
        t2v[a:b] = _chunk_ranks(rows(a, b), idx)
        v2t[a:b] = _chunk_ranks(cols(a, b), idx)
    return t2v, v2t


def _check_embeddings(text_emb, video_emb) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(text_emb, dtype=np.float32)
    v = np.asarray(video_emb, dtype=np.float32)
    if t.ndim != 2 or v.ndim != 2 or t.shape != v.shape or t.shape[0] == 0:
        raise ValueError(f"embeddings: expected text and video [N, D] of equal shape, got {t.shape} and {v.shape}")
    for name, x in (("text_emb", t), ("video_emb", v)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"embeddings: {name} contains NaN or infinite values")
    return t, v


def retrieval_ranks_from_embeddings(text_emb, video_emb, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(t2v_ranks, v2t_ranks) with similarity = text_emb @ video_emb.T, computed in chunks."""
    t, v = _check_embeddings(text_emb, video_emb)
    # rows a:b of the similarity matrix, and columns a:b transposed, never the whole matrix
    return _ranks_in_chunks(t.shape[0], chunk_size, lambda a, b: t[a:b] @ v.T, lambda a, b: v[a:b] @ t.T)


def metrics_from_ranks(t2v_ranks, v2t_ranks) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, ranks in (("t2v", t2v_ranks), ("v2t", v2t_ranks)):
        ranks = np.asarray(ranks)
        for k in KS:
            out[f"{prefix}_r{k}"] = float(100.0 * np.mean(ranks <= k))
        out[f"{prefix}_medr"] = float(np.median(ranks))
        out[f"{prefix}_meanr"] = float(np.mean(ranks))
    out["rsum"] = float(sum(out[f"{p}_r{k}"] for p in ("t2v", "v2t") for k in RSUM_KS))
    return out


def retrieval_metrics(similarity, chunk_size: int = 4096) -> dict[str, float]:
    """Metrics of a [N, N] similarity matrix (text rows, video columns, truth on the diagonal)."""
    return metrics_from_ranks(*retrieval_ranks(similarity, chunk_size))


def retrieval_metrics_from_embeddings(text_emb, video_emb, chunk_size: int = 4096) -> dict[str, float]:
    """Metrics of text_emb @ video_emb.T without materialising the N x N matrix."""
    return metrics_from_ranks(*retrieval_ranks_from_embeddings(text_emb, video_emb, chunk_size))


def recall_at_k_curve(ranks, ks=None) -> tuple[np.ndarray, np.ndarray]:
    """(ks, recall %) for a recall@k plot; ks default to 1..N."""
    ranks = np.asarray(ranks)
    ks = np.arange(1, len(ranks) + 1) if ks is None else np.asarray(ks)
    sorted_ranks = np.sort(ranks)
    return ks, 100.0 * np.searchsorted(sorted_ranks, ks, side="right") / max(len(ranks), 1)


def chance_rsum(n: int) -> float:
    """RSUM (%) expected of a ranking that knows nothing, in a gallery of n: the true match's
    rank is uniform on 1..n, so R@k = 100 min(k, n) / n in each direction."""
    n = int(n)
    if n < 1:
        raise ValueError(f"chance_rsum: the gallery needs a study, got n={n}")
    return 2.0 * sum(100.0 * min(k, n) / n for k in RSUM_KS)


def subset_retrieval_metrics(text_emb, video_emb, size: int, subsets: int, seed: int,
                             chunk_size: int = 4096) -> dict[str, float]:
    """`metrics_from_ranks` keys averaged over `subsets` random subsets of `size` of the N
    studies (drawn without replacement, seeded by `seed`; text and video of the same studies,
    ranked within the subset), and `<key>_std`: their standard deviation over the subsets.
    size == N gives the whole set's metrics (std 0)."""
    t, v = _check_embeddings(text_emb, video_emb)
    n, size, subsets = t.shape[0], int(size), int(subsets)
    if not 1 <= size <= n or subsets < 1:
        raise ValueError(f"subset_retrieval_metrics: need 1 <= size <= {n} studies and subsets >= 1, "
                         f"got size {size} and subsets {subsets}")
    rng = np.random.default_rng([int(seed), 0x5AB5E7])
    runs = []
    for _ in range(subsets):
        idx = np.sort(rng.choice(n, size=size, replace=False))
        runs.append(metrics_from_ranks(*retrieval_ranks_from_embeddings(t[idx], v[idx], chunk_size)))
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out.update({f"{k}_std": float(np.std([r[k] for r in runs])) for k in runs[0]})
    return out
