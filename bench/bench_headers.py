"""read_header against an earlier commit's, on the same files, interleaved rounds.

    python bench/bench_headers.py --cohort /tmp/h3/syn100 --against 776615b --repeat 4

The earlier `cmr_ray/dicom/headers.py` is taken with `git show` and imported beside the
current one; every round reads every file with each.  Prints seconds per round, the ratio
per round, and checks that both give the same header on every 7th file.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", type=Path, required=True, help="cohort dir (dicom/)")
    ap.add_argument("--against", required=True, help="git commit whose headers.py is the baseline")
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args(argv)
    from cmr_ray.data.index import list_input_files
    from cmr_ray.dicom import headers as new

    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{args.against}:cmr_ray/dicom/headers.py"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "old_headers.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("old_headers", path)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
    dicom = (args.cohort / "dicom").resolve()
    files = [dicom / f.path for f in list_input_files(dicom)]
    for p in files:
        p.read_bytes()  # page cache

    def run(read):
        t = time.perf_counter()
        for p in files:
            read(p)
        return time.perf_counter() - t

    times = {"old": [], "new": []}
    for _ in range(args.repeat):
        times["old"].append(run(old.read_header))
        times["new"].append(run(new.read_header))
        new.forget_values()
    for p in files[::7]:
        if old.read_header(p) != new.read_header(p):
            sys.exit(f"{p}: the two give different headers")
    new.forget_values()
    print(f"{len(files)} files; seconds per round (old = {args.against}):")
    for k, v in times.items():
        print(f"  {k}" + "".join(f"{x:8.2f}" for x in v))
    print("  old/new" + "".join(f"{a / b:8.2f}" for a, b in zip(times["old"], times["new"])))
    print(f"same header on every 7th file ({len(files[::7])} compared)")


if __name__ == "__main__":
    main()
