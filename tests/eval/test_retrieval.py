"""retrieval_metrics against hand-computed cases, and bounded memory for large N."""
import tracemalloc

import numpy as np
import pytest

from cmr_ray.eval import retrieval_metrics, retrieval_metrics_from_embeddings
from cmr_ray.eval.retrieval import (
    chance_rsum,
    metrics_from_ranks,
    recall_at_k_curve,
    retrieval_ranks,
    retrieval_ranks_from_embeddings,
    subset_retrieval_metrics,
)

KEYS = {f"{p}_{m}" for p in ("t2v", "v2t") for m in ("r1", "r5", "r10", "r50", "medr", "meanr")} | {"rsum"}


def test_keys_and_perfect():
    m = retrieval_metrics(np.eye(100))
    assert set(m) == KEYS
    for p in ("t2v", "v2t"):
        assert m[f"{p}_r1"] == m[f"{p}_r50"] == 100.0
        assert m[f"{p}_medr"] == m[f"{p}_meanr"] == 1.0
    assert m["rsum"] == 600.0


def test_reversed_puts_truth_last():
    n = 100
    i, j = np.indices((n, n))
    sim = ((j - i) % n).astype(float)  # true match scores 0, every other candidate more
    m = retrieval_metrics(sim)
    for p in ("t2v", "v2t"):
        assert m[f"{p}_r1"] == m[f"{p}_r5"] == m[f"{p}_r10"] == m[f"{p}_r50"] == 0.0
        assert m[f"{p}_medr"] == m[f"{p}_meanr"] == n
    assert m["rsum"] == 0.0


@pytest.mark.parametrize("n", [10, 100])
def test_constant_scores_as_badly_as_possible(n):
    m = retrieval_metrics(np.full((n, n), 0.3))
    for p in ("t2v", "v2t"):
        assert m[f"{p}_medr"] == m[f"{p}_meanr"] == n
        assert m[f"{p}_r1"] == 0.0
        assert m[f"{p}_r50"] == (100.0 if n <= 50 else 0.0)


def test_small_hand_case_with_ties():
    sim = np.array([[0.9, 0.1, 0.5],
                    [0.2, 0.3, 0.8],
                    [0.4, 0.4, 0.4]])
    t2v, v2t = retrieval_ranks(sim)
    assert t2v.tolist() == [1, 2, 3]  # row 2: a three-way tie counts against the query
    assert v2t.tolist() == [1, 2, 3]
    m = retrieval_metrics(sim)
    assert m["t2v_r1"] == pytest.approx(100 / 3)
    assert m["t2v_r5"] == 100.0 and m["t2v_medr"] == 2.0 and m["t2v_meanr"] == 2.0


def _matrix_with_ranks(ranks, rng):
    """Rows whose true (diagonal) score is exactly the ranks[i]-th largest, no ties."""
    n = len(ranks)
    sim = np.empty((n, n))
    for i, r in enumerate(ranks):
        vals = np.sort(rng.permutation(n).astype(float))[::-1]  # distinct scores, descending
        true = vals[r - 1]
        others = np.delete(vals, r - 1)
        rng.shuffle(others)
        sim[i] = np.insert(others, i, true)
    return sim


def test_random_with_known_ranks():
    rng = np.random.default_rng(0)
    n = 120
    ranks = rng.integers(1, n + 1, size=n)
    sim = _matrix_with_ranks(ranks, rng)
    t2v, _ = retrieval_ranks(sim)
    assert t2v.tolist() == ranks.tolist()
    _, v2t = retrieval_ranks(sim.T)  # video queries of the transpose are the text queries
    assert v2t.tolist() == ranks.tolist()
    m = retrieval_metrics(sim)
    for k in (1, 5, 10, 50):
        assert m[f"t2v_r{k}"] == pytest.approx(100.0 * np.mean(ranks <= k))
    assert m["t2v_medr"] == np.median(ranks) and m["t2v_meanr"] == pytest.approx(ranks.mean())
    mt = retrieval_metrics(sim.T)
    assert m["rsum"] == pytest.approx(mt["rsum"])


def test_chunking_and_embeddings_agree():
    rng = np.random.default_rng(1)
    t, v = rng.normal(size=(2, 257, 8)).astype(np.float32)
    sim = t @ v.T
    full = retrieval_ranks(sim, chunk_size=10_000)
    for cs in (1, 7, 64):
        chunked = retrieval_ranks(sim, chunk_size=cs)
        emb = retrieval_ranks_from_embeddings(t, v, chunk_size=cs)
        for a, b, c in zip(full, chunked, emb):
            assert a.tolist() == b.tolist() == c.tolist()
    assert retrieval_metrics_from_embeddings(t, v, 13) == retrieval_metrics(sim)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="square"):
        retrieval_metrics(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="equal shape"):
        retrieval_metrics_from_embeddings(np.zeros((3, 4)), np.zeros((2, 4)))


def test_recall_curve_matches_metrics():
    ranks = np.array([1, 1, 3, 7, 60])
    ks, rec = recall_at_k_curve(ranks, ks=[1, 5, 10, 50, 60])
    m = metrics_from_ranks(ranks, ranks)
    assert rec.tolist() == [m["t2v_r1"], m["t2v_r5"], m["t2v_r10"], m["t2v_r50"], 100.0]


def test_memory_stays_bounded_for_large_n():
    n, d, chunk = 20_000, 8, 256
    rng = np.random.default_rng(2)
    v = rng.normal(size=(n, d)).astype(np.float32)
    t = v + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        m = retrieval_metrics_from_embeddings(t, v, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_matrix = n * n * 4  # 1.6 GB of float32
    assert peak < full_matrix / 20, f"peak {peak / 1e6:.0f} MB"
    assert peak < 8 * chunk * n * 4  # a few chunk-sized temporaries, nothing N x N
    assert 0 < m["t2v_r50"] <= 100 and m["t2v_medr"] >= 1


# ------------------------------------------------- gallery size (issue 20: internal vs external)

def test_chance_rsum_is_k_over_n_per_k_and_direction():
    assert chance_rsum(202) == pytest.approx(2 * 100 * (5 + 10 + 50) / 202)  # 64.4: the internal test split
    assert chance_rsum(150) == pytest.approx(2 * 100 * 65 / 150)  # 86.7: the synthetic external cohort
    assert chance_rsum(20) == pytest.approx(2 * (25.0 + 50.0 + 100.0))  # R@50 of 20 studies is 100%
    assert chance_rsum(1) == 600.0
    with pytest.raises(ValueError, match="gallery"):
        chance_rsum(0)
    # what random scores give, on average: the formula
    rng = np.random.default_rng(0)
    for n in (30, 80):
        got = np.mean([retrieval_metrics(rng.random((n, n)))["rsum"] for _ in range(400)])
        assert got == pytest.approx(chance_rsum(n), rel=0.03), (n, got)


def test_subset_average_at_the_full_size_is_the_full_metrics():
    rng = np.random.default_rng(1)
    t, v = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    v[:20] = t[:20] + 0.1 * rng.normal(size=(20, 8))  # half the pairs findable
    full = retrieval_metrics_from_embeddings(t, v)
    sub = subset_retrieval_metrics(t, v, 40, subsets=5, seed=3)
    assert set(sub) == KEYS | {f"{k}_std" for k in KEYS}
    for k in KEYS:
        assert sub[k] == pytest.approx(full[k]) and sub[f"{k}_std"] == pytest.approx(0.0, abs=1e-9), k


def test_subset_average_follows_the_gallery_size_and_its_seed():
    rng = np.random.default_rng(2)
    t, v = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))  # nothing findable: chance at any size
    at50 = subset_retrieval_metrics(t, v, 50, subsets=60, seed=0)
    assert at50["rsum"] == pytest.approx(chance_rsum(50), rel=0.1) and at50["rsum_std"] > 0
    assert retrieval_metrics_from_embeddings(t, v)["rsum"] == pytest.approx(chance_rsum(200), rel=0.25)
    assert subset_retrieval_metrics(t, v, 50, subsets=60, seed=0) == at50
    assert subset_retrieval_metrics(t, v, 50, subsets=60, seed=1) != at50
    # one subset is the metrics of exactly those studies, ranked among themselves
    idx = np.sort(np.random.default_rng([5, 0x5AB5E7]).choice(200, size=50, replace=False))
    one = subset_retrieval_metrics(t, v, 50, subsets=1, seed=5)
    assert one["rsum"] == pytest.approx(retrieval_metrics_from_embeddings(t[idx], v[idx])["rsum"])
    for size, subsets in ((0, 1), (201, 1), (10, 0)):
        with pytest.raises(ValueError, match="size"):
            subset_retrieval_metrics(t, v, size, subsets=subsets, seed=0)
