"""Driver for the kill/resume test: `python run_fake_sweep.py EXP.yaml [--resume]` runs the
sweep with the fakes from fakes.py (a subprocess the test can SIGKILL)."""
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
sys.path.insert(0, str(Path(__file__).parent))

import ray.cloudpickle  # noqa: E402

import fakes  # noqa: E402
from cmr_ray.tune import run_sweep  # noqa: E402

ray.cloudpickle.register_pickle_by_value(fakes)
out = run_sweep(sys.argv[1], resume="--resume" in sys.argv, train_fn=fakes.fake_train, eval_fn=fakes.fake_eval,
                model_loader=fakes.fake_loader, num_cpus=4)
sys.exit(0 if all(s == "FINISHED" for s in out["status"].values()) else 1)
