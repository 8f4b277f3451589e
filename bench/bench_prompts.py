"""Do the zero-shot prompts separate the reports they stand for?  Text tower only, no model.

    .venv/bin/python bench/bench_prompts.py                         # 200 studies per site
    .venv/bin/python bench/bench_prompts.py --against e13afe4       # beside the prompts at a commit
    .venv/bin/python bench/bench_prompts.py --studies 400 --seed 3 --sites internal

Writes no DICOM: each study's report comes from `cmr_ray.synth.cohort.study_report` (the
text `generate_study` writes, from the same measured values), for `--studies` studies of the
internal site (seed `--seed`) and of the external one (seed `--seed` + the external
stand-in's offset, `cmr_ray.eval.external.SYNTH_SEED_OFFSET`, in its own house style).  The
store's text is the impression (`extract_impression`, then `scrub`), so that is what is
embedded, by the text tower alone (`--text-model`, default the packaged MiniLM; mean-pooled,
L2-normalised, no projection: nothing trained).  Each binary task's score is
`zeroshot.text_prompt_auc`: similarity to the averaged positive prompts minus the averaged
negative ones, its AUC against the true labels.  0.5 is chance; below it the prompts rank
the reports backwards, which no video embedding trained to sit near its report can undo.
`--against REV` adds the prompts of `cmr_ray/eval/zeroshot.py` at git revision REV as a
"before" column.  Prints a Markdown table (tasks in rows; per site: positives / studies,
before, after) and one JSON line.  Not a timing: about a minute on two cores for 2 x 200.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prompts_at(rev: str) -> dict:
    """{task: (positive, negative)} of cmr_ray/eval/zeroshot.py at git revision `rev`."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:cmr_ray/eval/zeroshot.py"], check=True,
                         capture_output=True, text=True).stdout
    ns: dict = {"__name__": f"zeroshot_at_{rev}"}
    exec(compile(src, f"{rev}:cmr_ray/eval/zeroshot.py", "exec"), ns)  # noqa: S102 (our own file, at a commit)
    return {**ns["PROMPTS"], **ns.get("FINDING_PROMPTS", {})}


def impressions(site: str, studies: int, seed: int, protocol: str) -> tuple[list[str], dict]:
    """(impressions as the store keeps them, {label: [value per impression]}) of one site's reports."""
    from cmr_ray.synth.cohort import study_report
    from cmr_ray.text.report import extract_impression, scrub

    texts, labels = [], {}
    for i in range(studies):
        r = study_report(seed, i, protocol, site=site)
        imp = extract_impression(r["report"])
        if imp is None:
            continue
        texts.append(scrub(imp, {k: v for k, v in r["phi"].items() if k != "report_mentions"}))
        for k, v in r["labels"].items():
            labels.setdefault(k, []).append(v)
    return texts, labels


def main(argv=None) -> int:
    from cmr_ray.eval.external import SYNTH_SEED_OFFSET
    from cmr_ray.model.sizes import DEFAULT_TEXT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=200, help="reports per site (default 200)")
    ap.add_argument("--seed", type=int, default=7, help="the internal site's cohort seed (default 7)")
    ap.add_argument("--sites", nargs="+", default=["internal", "external"], choices=["internal", "external"])
    ap.add_argument("--protocol", default="small", help="synthetic protocol whose planes the LV is measured on")
    ap.add_argument("--against", metavar="REV", help="also score the prompts of this git revision (before)")
    ap.add_argument("--text-model", default=DEFAULT_TEXT_MODEL)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from cmr_ray.data.schema import BINARY_LABELS, FINDINGS
    from cmr_ray.eval.zeroshot import text_prompt_auc
    from cmr_ray.model.text import TextTower

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    tower = TextTower(args.text_model).eval()

    def encode(texts):
        with torch.no_grad():
            return tower(list(texts))

    tasks = [*FINDINGS, *BINARY_LABELS]
    before = prompts_at(args.against) if args.against else None
    result: dict = {"studies": args.studies, "seed": args.seed, "text_model": args.text_model, "against": args.against}
    for site in args.sites:
        t0 = time.time()
        seed = args.seed + (SYNTH_SEED_OFFSET if site == "external" else 0)
        texts, labels = impressions(site, args.studies, seed, args.protocol)
        print(f"{site}: {len(texts)} impressions (seed {seed}) in {time.time() - t0:.0f} s", file=sys.stderr)
        present = [t for t in tasks if t in labels]
        after = text_prompt_auc(encode, texts, labels, present)
        old = (text_prompt_auc(encode, texts, labels, [t for t in present if t in before], prompts=before)
               if before else {})
        pos = {t: int(np.nansum(np.asarray(labels[t], dtype=np.float64))) for t in present}
        result[site] = {"n": len(texts), "positives": pos, "after": after, "before": old}

    head = ["task"] + [c for s in args.sites for c in (f"{s} pos/n", *((f"{s} before",) if before else ()), f"{s} after")]
    print("| " + " | ".join(head) + " |\n|" + "|".join(["---"] * len(head)) + "|")
    fmt = lambda v: "–" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    for t in tasks:
        row = [t]
        for s in args.sites:
            r = result[s]
            row.append(f"{r['positives'].get(t, 0)}/{r['n']}")
            if before:
                row.append(fmt(r["before"].get(t)))
            row.append(fmt(r["after"].get(t)))
        print("| " + " | ".join(row) + " |")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
