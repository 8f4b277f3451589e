"""The object-store path for real: a synthetic cohort is prepared into a store on an
S3-compatible server (moto on 127.0.0.1), a smoke training run reads it from there and
checkpoints there, and a second run with more epochs resumes from that S3 checkpoint."""
from __future__ import annotations

import boto3
import pytest

from cmr_ray.data import storefs

pytestmark = pytest.mark.integration


def _keys(bucket_uri: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3")
    out = s3.list_objects_v2(Bucket=bucket_uri[len("s3://"):], Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in out)


def test_prepare_train_and_resume_on_s3(s3_bucket, tmp_path):
    from cmr_ray.config import load_config
    from cmr_ray.data.prepare import prepare
    from cmr_ray.runtime import init_ray
    from cmr_ray.synth import generate_cohort
    from cmr_ray.train import run_training

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, studies=24, seed=0, workers=1, progress=False)
    store = storefs.join(s3_bucket, "cmr_store", "smoke")
    results = storefs.join(s3_bucket, "ray_results")
    sets = [f"data.store={store}", f"train.storage_path={results}", "data.val_fraction=0.15",
            "data.test_fraction=0.2", "data.views=cine:sax", "train.batch_size=4",
            "train.epochs=1", "train.workers=1", "train.cpus_per_worker=1.0"]
    cfg = load_config("experiments/smoke.yaml", sets)

    init_ray(num_cpus=2)  # workers inherit AWS_ENDPOINT_URL & co. from this process
    try:
        prepare(cohort / "dicom", cohort / "reports.csv", store, labels=cohort / "labels.csv",
                cfg=cfg, progress=False)
        fs, root = storefs.open_store(store)  # pyarrow's S3 filesystem, AWS_ENDPOINT_URL from the env
        assert storefs.exists(fs, storefs.join(root, "store.json"))
        shards = storefs.list_files(fs, storefs.join(root, "shards"))
        assert shards and all(s.endswith(".parquet") for s in shards)

        first = run_training(cfg, name="s3-smoke", progress=False)
        assert first.error is None
        assert first.checkpoint.path.startswith(s3_bucket[len("s3://"):] + "/ray_results/s3-smoke/")
        ckpts = [k for k in _keys(s3_bucket, "ray_results/s3-smoke/") if "/checkpoint_" in k]
        assert ckpts, "no checkpoint objects on S3"

        marks = tmp_path / "marks"
        marks.mkdir()
        cfg2 = load_config("experiments/smoke.yaml", [*sets[:-3], "train.epochs=2", "train.workers=1",
                                                      "train.cpus_per_worker=1.0"])
        second = run_training(cfg2, name="s3-smoke", progress=False,
                              fault_hook={"dir": str(marks), "epoch": -1})  # never fires; records start
        assert second.error is None
        starts = {p.read_text() for p in marks.iterdir() if p.name.startswith("start_")}
        assert starts == {"1"}, f"the second run did not resume from the S3 checkpoint: {starts}"
        assert second.metrics["epoch"] == 2
        assert second.checkpoint.path != first.checkpoint.path
    finally:
        import ray

        ray.shutdown()
