"""bench/bench_gpu.py --device cpu --toy: runs end to end on the CPU, importing only
cmr_ray.model, torch and transformers (Ray, MLflow and pydicom are blocked in its process)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKED = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('ray', 'mlflow', 'pydicom', 'pyarrow'):
            raise ImportError(f'bench_gpu must not import {name}')
sys.meta_path.insert(0, Block())
sys.argv = ['bench_gpu.py', '--device', 'cpu', '--toy', '--frames', '8,64', '--json', sys.argv[1]]
runpy.run_path('bench/bench_gpu.py', run_name='__main__')
"""


def test_bench_gpu_runs_on_cpu_at_toy_size(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["frames", "ckpt", "batch"])
    table = lines[header + 1:]
    assert len(table) == 4 and lines[-1] == table[-1]  # the table comes last: 2 frame counts x ckpt on/off
    assert {tuple(r.split()[:2]) for r in table} == {("8", "on"), ("8", "off"), ("64", "on"), ("64", "off")}
    assert "projection:" in proc.stdout
    import json

    rows = json.loads(out.read_text())["rows"]
    assert all(r["samples_per_s"] > 0 and r["tflop_per_step"] > 0 and 0 < r["mfu"] for r in rows)
