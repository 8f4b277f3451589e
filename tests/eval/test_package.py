"""`cmr_ray.eval` is light to import, and `evaluate` is the function (not a module)."""
import subprocess
import sys


def test_import_is_light_and_evaluate_is_a_function():
    code = (
        "import sys, cmr_ray.eval as e\n"
        "heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'ray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import cmr_ray.eval.evaluation\n"
        "from cmr_ray.eval import evaluate, retrieval_metrics\n"
        "assert callable(evaluate) and evaluate.__module__ == 'cmr_ray.eval.evaluation'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
