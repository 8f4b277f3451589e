"""Transfer evaluation (`cmr_ray.eval.transfer`): a tiny ACDC-layout set written here, read
into a store by the real reader, embedded by a tiny model, probed (5 classes) with bootstrap
intervals and drawn; the synthetic stand-in built once; the report's transfer table; a bad
`eval.transfer` value in one line."""
from types import SimpleNamespace

import numpy as np
import pytest

from cmr_ray.config import ConfigError, apply_overrides, load_config
from cmr_ray.data.acdc import prepare_nifti
from cmr_ray.data.schema import ACDC_CLASSES
from cmr_ray.eval import transfer
from cmr_ray.eval.evaluation import evaluate_method, fresh_model, write_outputs
from cmr_ray.synth.acdc import write_acdc_patient

SIZE = 16  # the tiny config's data.image_size (tests/eval/conftest.py)
X = Y = SIZE
S, T = 3, 6
AFFINE = np.diag([1.5, 1.5, 8.0, 1.0])
METRIC_KEYS = [f"transfer/acdc/probe/acdc_{m}" for m in ("acc", "auc", "f1")]


def write_acdc(root, per_group_train: int = 5, per_group_test: int = 2) -> str:
    """ACDC's layout: training/ and testing/ patient folders, each group a bright square of its own place."""
    rng = np.random.default_rng(0)
    n = 0
    for where, per in (("training", per_group_train), ("testing", per_group_test)):
        for _ in range(per):
            for c, group in enumerate(ACDC_CLASSES):
                n += 1
                name = f"patient{n:03d}"
                cine = rng.integers(0, 80, size=(X, Y, S, T)).astype(np.int16)
                cine[2 * c:2 * c + 5, 3:9] += 400
                info = {"ED": 1, "ES": 3, "Group": group, "Height": 170.0, "NbFrame": T, "Weight": 70.0}
                write_acdc_patient(root / where / name, name, cine, AFFINE, info, frame_files=False)
    n += 1  # one patient without a group: embedded, left out of the probe, counted
    name = f"patient{n:03d}"
    write_acdc_patient(root / "testing" / name, name, rng.integers(0, 80, size=(X, Y, S, T)).astype(np.int16),
                       AFFINE, {"ED": 1, "ES": 3, "NbFrame": T}, frame_files=False)
    return str(root)


@pytest.fixture(scope="module")
def acdc_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc")
    src = write_acdc(root / "ACDC")
    summary = prepare_nifti(src, str(root / "store"), fmt="acdc", cfg=load_config(None, {"data.image_size": SIZE}),
                            num_cpus=1, progress=False)
    assert summary.studies_used == 5 * 7 + 1 and summary.unlabelled == 1
    return str(root / "store")


def check_metrics(m: dict, prefix: str = "") -> None:
    for k in METRIC_KEYS:
        v, lo, hi = m[prefix + k], m[prefix + k + "_lo"], m[prefix + k + "_hi"]
        assert 0.0 <= v <= 1.0, (k, v)
        assert lo <= v + 1e-9 and v <= hi + 1e-9, (k, lo, v, hi)


def test_transfer_metrics_intervals_and_tsne(acdc_store, cfg, tmp_path):
    cfg = apply_overrides(cfg, {"eval.transfer": {"acdc": acdc_store}, "eval.bootstrap": 200})
    metrics, extras, notes = transfer.evaluate_transfer(fresh_model(cfg), cfg, progress=False)
    check_metrics(metrics)
    assert metrics["transfer/acdc/n_fit"] == 25 and metrics["transfer/acdc/n_test"] == 10
    ex = extras["acdc"]
    assert len(ex["test"]) == 11 and ex["test"].video.shape[1] == 16  # the unlabelled study is embedded
    assert any("1 studies without a group" in n for n in notes)
    text = transfer.write_transfer_outputs(tmp_path, {"Zero-shot": (metrics, extras)})
    assert "| Zero-shot | 25 | 10 |" in text and (tmp_path / "transfer.md").exists()
    assert (tmp_path / "transfer_acdc_tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_method_carries_transfer_to_a_baselines_outputs(fake_store, acdc_store, cfg, tmp_path):
    """The path the sweep's baselines take (evaluate_method, then write_outputs): no change there needed."""
    cfg = apply_overrides(cfg, {"eval.transfer": {"acdc": acdc_store}, "eval.bootstrap": 100,
                                "eval.probes": ["acdc"], "eval.few_shot": []})
    metrics, extras, notes = evaluate_method(fresh_model(cfg), cfg, fake_store, progress=False)
    check_metrics(metrics)
    assert "test/rsum" in metrics and "probe/acdc_acc" in metrics
    write_outputs(tmp_path, "header", {}, notes, metrics, extras)
    assert "Transfer to acdc" in (tmp_path / "tables.md").read_text()
    assert (tmp_path / "transfer_acdc_tsne.png").exists()


def test_synthetic_stand_in_is_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "SYNTH_STUDIES", 10)
    cfg = load_config(None, {"data.store": str(tmp_path / "cmr_store" / "syn"), "data.image_size": SIZE,
                             "eval.transfer": {"acdc": "synthetic"}})
    stores = transfer.ensure_transfer_stores(cfg, num_cpus=1, progress=False)
    store = stores["acdc"]
    assert store == str(tmp_path / "cmr_store" / "syn-transfer-acdc" / "store")
    marker = tmp_path / "cmr_store" / "syn-transfer-acdc" / "store" / "store.json"
    stamp = marker.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr("cmr_ray.synth.acdc.generate_acdc", lambda *a, **k: calls.append(a))
    assert transfer.ensure_transfer_stores(cfg, progress=False) == stores
    assert not calls and marker.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"holds 16 px clips but data.image_size is 32") as e:
        transfer.ensure_transfer_stores(load_config(None, {**{"data.store": cfg["data"]["store"]},
                                                           "eval.transfer": {"acdc": "synthetic"},
                                                           "data.image_size": 32}), progress=False)
    assert "\n" not in str(e.value)


def test_missing_store_is_one_line(cfg, tmp_path):
    cfg = apply_overrides(cfg, {"eval.transfer": {"acdc": str(tmp_path / "nowhere")}})
    with pytest.raises(ValueError) as e:
        transfer.check_transfer_config(cfg)
    assert str(e.value).startswith("eval.transfer.acdc: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("value", ["store_acdc", {"a/b": "store"}, {"acdc": ""}, {"acdc": 3}])
def test_bad_eval_transfer_is_a_one_line_config_error(tmp_path, value):
    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"eval": {"transfer": value}}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "'eval.transfer'" in msg


def run(metrics=None, baseline=None, views="cine:sax", frames=8):
    tags = {"cmr.baseline": baseline} if baseline else {}
    return SimpleNamespace(data=SimpleNamespace(metrics=metrics or {}, tags=tags,
                                                params={"data.views": views, "data.frames": str(frames)}))


def test_transfer_table_prints_the_papers_figures_beside_the_rows():
    from cmr_ray.tune.report_transfer import transfer_table

    def m(acc, auc, f1, iv=True):
        out = {"transfer/acdc/probe/acdc_acc": acc, "transfer/acdc/probe/acdc_auc": auc,
               "transfer/acdc/probe/acdc_f1": f1}
        if iv:
            out.update({"transfer/acdc/probe/acdc_acc_lo": acc - 0.1, "transfer/acdc/probe/acdc_acc_hi": acc + 0.1})
        return out

    runs = [run(m(0.25, 0.55, 0.22), "zeroshot", "cine:4ch+sax|lge:sax+4ch+2ch+3ch", 16),
            run(m(0.40, 0.80, 0.38), "simclr", "cine:4ch+sax|lge:sax+4ch+2ch+3ch", 16),
            run(m(0.66, 0.91, 0.64)),
            run(m(0.61, 0.90, 0.60, iv=False), views="cine:4ch+sax", frames=8),
            run({"test/rsum": 100.0}, views="lge:sax", frames=8)]   # no transfer metrics: not a row
    text = transfer_table(runs)
    lines = text.splitlines()
    assert "| Model | Acc | AUC | F1 | Paper Acc | Paper AUC | Paper F1 |" in lines
    assert "| Zero-shot (16) · paper: Zero-shot | 0.25 [0.15, 0.35] | 0.55 | 0.22 | 0.30 | 0.59 | 0.30 |" in lines
    assert "| SimCLR (16) · paper: SimCLR | 0.40 [0.30, 0.50] | 0.80 | 0.38 | 0.42 | 0.82 | 0.42 |" in lines
    assert "| CINE_sax (8) | 0.66 [0.56, 0.76] | 0.91 | 0.64 | 0.70 | 0.95 | 0.70 |" in lines
    assert "| CINE_lax-sax (8) | 0.61 | 0.90 | 0.60 | – | – | – |" in lines
    assert sum(line.startswith("| ") for line in lines) == 1 + 4  # header, 3 paper rows, 1 more trial
    assert "CINE_sax (8) > SimCLR > Zero-shot: yes" in text
    # nothing logged yet: the paper's table alone, with how to get ours
    empty = transfer_table([run({"test/rsum": 1.0})])
    assert "| CINE_sax (8) | – | – | – | 0.70 | 0.95 | 0.70 |" in empty and "eval.transfer" in empty


def test_evaluate_model_writes_the_transfer_table_and_figure(fake_store, acdc_store, cfg, tmp_path):
    """`cmr-ray eval` and a trial: keys for ours and each baseline, zero-shot beside ours in the figure."""
    from cmr_ray.eval.evaluation import evaluate_model

    cfg = apply_overrides(cfg, {"eval.transfer": {"acdc": acdc_store}, "eval.bootstrap": 50,
                                "eval.probes": ["acdc"], "eval.few_shot": [], "eval.zero_shot_prompts": False})
    metrics = evaluate_model(fresh_model(cfg), cfg, fake_store, tmp_path, baselines=["zeroshot"], progress=False)
    check_metrics(metrics)
    check_metrics(metrics, prefix="baseline/zeroshot/")
    text = (tmp_path / "transfer.md").read_text()
    assert "| Zero-shot | 25 | 10 |" in text and "| CMR-CLIP (ours) | 25 | 10 |" in text
    assert "Transfer to acdc" in (tmp_path / "tables.md").read_text()
    assert (tmp_path / "transfer_acdc_tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_absolute_stores_keeps_synthetic_and_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = transfer.absolute_stores({"acdc": "store_acdc", "syn": "synthetic", "s3": "s3://b/store"})
    assert got == {"acdc": str(tmp_path / "store_acdc"), "syn": "synthetic", "s3": "s3://b/store"}
