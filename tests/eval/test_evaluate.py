"""End to end on a tiny fake store and a tiny model, through `cmr-ray eval` and a saved
checkpoint: every table, plot and metric key is written."""
import dataclasses
import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from cmr_ray.cli import main
from cmr_ray.eval.evaluation import check_baselines, fresh_model
from cmr_ray.train.checkpoint import save_checkpoint


@pytest.mark.integration  # builds the text tower three times and trains SimCLR for an epoch
def test_eval_command_writes_tables_plots_and_keys(fake_store, cfg, tmp_path):
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint_000000", fresh_model(cfg), None, None, epoch=0, cfg=cfg)
    out = tmp_path / "eval"
    res = CliRunner().invoke(main, ["eval", str(ckpt.parent), "--store", fake_store, "--out", str(out),
                                    "--baselines", "zeroshot,simclr", "--set", "eval.few_shot_seeds=1"])
    assert res.exit_code == 0, res.output
    assert "| CMR-CLIP (ours) |" in res.output and "Table 4" in res.output
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test/t2v_r5", "test/v2t_r50", "test/rsum", "probe/hcm_auc", "probe/acdc_acc",
                "probe/acdc_f1", "fewshot/acdc_acc_k2", "fewshot/hcm_auc_k1", "zeroshot_prompt/hcm_auc",
                "zeroshot_prompt/acdc_acc", "baseline/zeroshot/test/rsum", "baseline/simclr/probe/hcm_auc",
                "baseline/simclr/fewshot/acdc_acc_k1", "fewshot_proto/hcm_auc_k1", "fewshot_proto/acdc_acc_k4_std",
                "baseline/simclr/fewshot_proto/acdc_acc_k1"):
        assert key in m, key
    assert all(re.match(r"^[/\w.\- ]*$", k) for k in m)
    assert 0 < m["baseline/simclr/loss_ratio"] < 1.5      # SimCLR's final NT-Xent loss / ln(2B - 1) is reported
    assert not any(k.startswith("baseline/") and "zeroshot_prompt" in k for k in m)
    assert 0 <= m["test/rsum"] <= 600 and m["probe/acdc_acc"] is not None and not math.isnan(m["probe/acdc_acc"])
    # the checkpoint holds the untrained tower at train.seed: the zero-shot baseline is the same model
    assert m["baseline/zeroshot/test/rsum"] == m["test/rsum"]
    assert m["baseline/zeroshot/probe/acdc_acc"] == m["probe/acdc_acc"]
    for name in ("retrieval", "probe_binary", "probe_acdc", "zeroshot_prompts", "fewshot", "fewshot_proto"):
        assert (out / f"{name}.md").read_text().startswith("### ")
        assert (out / f"{name}.csv").read_text().count("\n") >= 2
    for png in ("tsne.png", "recall_at_k.png", "confusion_acdc.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "tables.md").read_text()
    assert "| Method | T2V R@5 | T2V R@10 | T2V R@50 | V2T R@5 | V2T R@10 | V2T R@50 | RSUM |" in text
    assert "| Method | NICM Acc | NICM AUC | NICM F1 | HCM Acc | HCM AUC | HCM F1 |" in text
    for row in ("| Zero-shot |", "| SimCLR |", "| CMR-CLIP (ours) |"):
        assert row in text
    assert (out / "config.yaml").exists()
    # issue 19: a 95% bootstrap interval around every test and probe metric, of every method
    values = {k: v for k, v in m.items() if ("test/" in k or "probe/" in k) and not k.endswith(("_lo", "_hi"))
              and "fewshot" not in k and "zeroshot_prompt" not in k}
    assert len(values) >= 2 * 20
    for k, v in values.items():
        if v is not None:
            assert m[k + "_lo"] <= v + 1e-9 and v <= m[k + "_hi"] + 1e-9, (k, m[k + "_lo"], v, m[k + "_hi"])
    rec = np.load(out / "per_study.npz")
    n = len(rec["study_key"])
    assert rec["t2v_rank"].shape == rec["v2t_rank"].shape == (n,) and rec["acdc_score"].shape == (n, 5)
    assert (out / "per_study.npz").stat().st_size < 50_000


def test_eval_command_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["eval", str(tmp_path), "--store", str(tmp_path)])
    assert res.exit_code == 2 and "not a cmr-ray checkpoint" in res.output
    assert check_baselines("zeroshot,simclr") == ["zeroshot", "simclr"]
    assert check_baselines(None) == []
    with pytest.raises(ValueError, match="unknown"):
        check_baselines(["moco"])


def test_bad_eval_settings_fail_before_any_work(cfg, tmp_path):
    from cmr_ray.eval.evaluation import evaluate_model

    for key, val, msg in (("probes", ["hcm", "lbbb"], "eval.probes"), ("few_shot", [0, 2], "eval.few_shot")):
        # past load_config's checks (dataclasses.replace does not validate): the run-time check still stops it
        bad = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **{key: val}))
        with pytest.raises(ValueError, match=msg):
            evaluate_model(None, bad, str(tmp_path / "nostore"), tmp_path / "out")
