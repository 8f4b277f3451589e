"""`cmr-ray report`'s read-out table (cmr_ray/tune/report.py: readout_table)."""
from types import SimpleNamespace

from cmr_ray.eval.nuisance import REPORTED
from cmr_ray.tune.report import readout_table


def run(views, frames, metrics, baseline=None):
    tags = {"cmr.baseline": baseline} if baseline else {}
    return SimpleNamespace(data=SimpleNamespace(metrics=metrics, tags=tags,
                                                params={"data.views": views, "data.frames": str(frames)}))


def test_the_table_reads_each_tower_against_the_untrained_one_and_is_absent_without_readouts():
    full = "cine:4ch+sax|lge:sax+4ch+2ch+3ch"
    zs = run(full, 16, {"readout/fat_mm": 0.5, "readout/wall_mm": 0.47, "readout/acdc": 0.56,
                        "readout/acdc_majority": 0.28}, baseline="zeroshot")
    trained = run("cine:sax", 8, {"readout/fat_mm": 0.52, "readout/wall_mm": 0.81, "readout/acdc": 0.83})
    bare = run("cine:sax", 4, {"test/rsum": 100.0})
    assert readout_table([bare]) == ""
    text = readout_table([trained, bare], {"zeroshot": zs})
    lines = text.splitlines()
    assert lines[0] == "| Views | Frames | " + " | ".join(REPORTED.values()) + " |"
    cells = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    zs_row, trained_row, bare_row = (cells(x) for x in lines[2:5])
    col = lambda name: 2 + list(REPORTED).index(name)  # noqa: E731
    assert zs_row[0] == "Zero-shot" and zs_row[col("wall_mm")] == "0.47" and zs_row[col("acdc")] == "0.56"
    assert trained_row[0] == "CINE_sax" and trained_row[col("wall_mm")] == "0.81" and trained_row[col("fov_mm")] == "–"
    assert set(bare_row[2:]) == {"–"}
    assert "majority class 0.28" in text and "readout/<name>" in text
