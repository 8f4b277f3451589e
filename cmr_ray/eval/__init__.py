"""Evaluation: retrieval, linear and few-shot probes, zero-shot prompts, baselines, plots.

    from cmr_ray.eval import retrieval_metrics, evaluate
    m = retrieval_metrics(similarity)          # similarity[i, j] = sim(text i, video j)
    metrics = evaluate("ckpt_dir", "store", "eval_out", baselines=["zeroshot"])

Importing this package is light (numpy only): torch, scikit-learn and matplotlib are
imported by the submodules that need them, when they are first used.
"""
from __future__ import annotations

from cmr_ray.eval.retrieval import (
    recall_at_k_curve,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    retrieval_ranks,
    retrieval_ranks_from_embeddings,
)

__all__ = [
    "evaluate",
    "recall_at_k_curve",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "retrieval_ranks",
    "retrieval_ranks_from_embeddings",
]


def __getattr__(name):  # lazy: `evaluate` pulls in torch and scikit-learn
    if name == "evaluate":
        from cmr_ray.eval.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'cmr_ray.eval' has no attribute {name!r}")
