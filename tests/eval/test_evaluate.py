"""End to end on a tiny fake store and a tiny model: every table, plot and key is written."""
import json
import math
import re

import pytest

from cmr_ray.eval.evaluate import check_baselines, evaluate_model, fresh_model

pytestmark = pytest.mark.integration  # builds the text tower and trains SimCLR for an epoch


def test_evaluate_writes_tables_plots_and_keys(fake_store, cfg, tmp_path):
    model = fresh_model(cfg)
    out = tmp_path / "eval"
    m = evaluate_model(model, cfg, fake_store, out, baselines=["zeroshot", "simclr"], progress=False)
    for key in ("test/t2v_r5", "test/v2t_r50", "test/rsum", "probe/hcm_auc", "probe/acdc_acc",
                "probe/acdc_f1", "fewshot/acdc_acc_k2", "fewshot/hcm_auc_k1", "zeroshot_prompt/hcm_auc",
                "zeroshot_prompt/acdc_acc", "baseline/zeroshot/test/rsum", "baseline/simclr/probe/hcm_auc",
                "baseline/simclr/fewshot/acdc_acc_k1"):
        assert key in m, key
    assert all(re.match(r"^[/\w.\- ]*$", k) for k in m)
    assert not any(k.startswith("baseline/") and "zeroshot_prompt" in k for k in m)
    assert 0 <= m["test/rsum"] <= 600 and not math.isnan(m["probe/acdc_acc"])
    # the same untrained tower (same seed) as ours here, so the zero-shot baseline scores alike
    assert m["baseline/zeroshot/test/rsum"] == m["test/rsum"]
    for name in ("retrieval", "probe_binary", "probe_acdc", "zeroshot_prompts", "fewshot"):
        assert (out / f"{name}.md").read_text().startswith("### ")
        assert (out / f"{name}.csv").read_text().count("\n") >= 2
    for png in ("tsne.png", "recall_at_k.png", "confusion_acdc.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "tables.md").read_text()
    assert "| Method | T2V R@5 | T2V R@10 | T2V R@50 | V2T R@5 | V2T R@10 | V2T R@50 | RSUM |" in text
    assert "| Method | NICM Acc | NICM AUC | NICM F1 | ICM Acc" in text
    for row in ("| Zero-shot |", "| SimCLR |", "| CMR-CLIP (ours) |"):
        assert row in text
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test/rsum"] == m["test/rsum"]
    assert (out / "config.yaml").exists()


def test_check_baselines():
    assert check_baselines("zeroshot,simclr") == ["zeroshot", "simclr"]
    assert check_baselines(None) == []
    with pytest.raises(ValueError, match="unknown"):
        check_baselines(["moco"])
