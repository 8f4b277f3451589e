"""Generate the synthetic cohort: DICOM studies, reports, labels and the PHI ledger.

    from cmr_ray.synth import generate_cohort
    summary = generate_cohort("cohort", studies=800, seed=0, protocol="small", workers=2)

Each study is made by `generate_study(seed, index, protocol, dicom_dir)` from its own random
streams, seeded by (seed, index), so the output is byte-identical for a seed whatever the
worker count.  Each study's labels carry the binary findings (`cmr_ray.synth.findings`)
read from its measured values, the same values its report prints; `measure_study` gives
those values without writing DICOM (for prevalence checks), and `study_report` the study's
report and labels with them (for checks on report text alone: the zero-shot prompts').
`site="external"` makes the cohort of another hospital (`patients.SITES`: vendors, field strength, matrix, noise,
pathology mix; `report.restyle`: its report style), labelled by the same findings code; its
cohort.json carries `"site": "external"`.  The parent writes reports.csv, labels.csv and phi.json in index order and
cohort.json last (the marker of a complete cohort: re-running with the same arguments
returns at once; different arguments over an existing cohort need overwrite=True).
"""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from cmr_ray.console import print_progress
from cmr_ray.synth.dicomio import study_attributes, uid_maker, write_series
from cmr_ray.synth.findings import FINDINGS, finding_labels, measured_values
from cmr_ray.synth.patients import MR_GRADES, check_site, sample_patient
from cmr_ray.synth.phantom import Phantom
from cmr_ray.synth.protocol import EQUIPMENT, PROTOCOLS, study_protocol
from cmr_ray.synth.report import restyle, write_report

# 2: 10-slice SAX stacks (small), infarct levels, atria in the impression; 3: body habitus, overlapping disease
# ranges; 4: finding labels (findings.yaml), RV function varies, reports graded by the same thresholds;
# 5: mitral regurgitation (patients.MR_GRADES): a systolic jet on cine long-axis views, in the report
FORMAT_VERSION = 5
LABEL_FIELDS = [
    "accession_number", "nicm", "icm", "amyl", "hcm", "acdc", *FINDINGS, "pathology", "comorbidities",
    "ef", "ef_target", "lv_edv_ml", "lv_esv_ml", "lv_edd_mm", "wall_mm", "septal_mm", "territory", "scar_levels", "transmurality",
    "wma", "lge_pattern", "rv_scale", "rv_contraction", "rv_basal_mm", "rvef", "atria_scale", "mr", "effusion_mm", "heart_rate", "t_es", "sex", "age",
    "vendor", "enhanced", "compression", "field_t", "fov_mm", "noise", "yaw_deg", "pitch_deg", "roll_deg",
    "inplane_deg", "lax_tilt_deg", "ti_ms", "study_dir", "n_files",
]
# the PHI a study's ledger entry keeps (phi.json), beside the report's own mentions
PHI_FIELDS = ("accession_number", "patient_name", "patient_id", "birth_date", "study_date", "institution",
              "referring_physician")


def measure_lv(areas_mm2: np.ndarray, spacing_mm: float) -> dict:
    """Disc summation over the SAX stack: areas [slices, phases] -> volumes and EF."""
    vol = areas_mm2.sum(axis=0) * spacing_mm / 1000.0  # ml per phase
    edv, esv = float(vol.max()), float(vol.min())
    return {"lv_edv_ml": edv, "lv_esv_ml": esv, "ef_exact": 100.0 * (1.0 - esv / edv)}


def _reading(p, lv: dict) -> dict:
    """The study's measured values as its report prints them (findings.measured_values)."""
    return measured_values(p, {**lv, "ef": lv["ef_exact"]})


def measure_study(p, protocol: str = "small") -> dict:
    """What `generate_study` measures for patient `p`, without writing DICOM: the LV by disc
    summation over the same cine SAX planes (masks only: noise does not enter the areas),
    completed by `findings.measured_values`."""
    ph = Phantom(p)
    specs = study_protocol(p, ph, protocol, np.random.default_rng([p.seed, p.index, 3]))  # the planes generate_study draws
    spec = next(s for s in specs if s.key == "cine_sax")
    areas = np.zeros((len(spec.planes), spec.phases))
    for s, plane in enumerate(spec.planes):
        for t in range(spec.phases):
            _, masks = ph.render(plane, "cine", t / spec.phases, masks=True)
            areas[s, t] = masks["lv_cavity"].sum() * plane.spacing[0] * plane.spacing[1]
    return _reading(p, measure_lv(areas, spec.spacing_between))


def study_report(seed: int, index: int, protocol: str = "small", site: str = "internal", patient=None) -> dict:
    """Study `index`'s report and labels as `generate_study` writes them, without DICOM:
    {"index", "report", "labels" (the patient's diagnoses and findings), "phi"} from
    `measure_study`'s readings (the same values), for checks on report text alone."""
    p = patient or sample_patient(seed, index, site=site)
    measured = measure_study(p, protocol)
    text, mentions = write_report(p, measured, np.random.default_rng([seed, index, 4]))
    phi = {k: p.phi[k] for k in PHI_FIELDS}
    return {"index": index, "report": restyle(text, check_site(p.site)["report"]),
            "labels": {**p.labels(), **finding_labels(measured, p.sex)}, "phi": {**phi, "report_mentions": mentions}}


def _to_stored(real: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return np.clip(np.rint((real - intercept) / slope), 0, 4095).astype(np.uint16)


def _render_series(spec, p, ph, rng, rr_ms, gains):
    """Frames (plane, slice, phase, trigger_ms, stored) of one series; LV areas for cine SAX."""
    frames, areas = [], None
    if spec.key == "cine_sax":
        areas = np.zeros((len(spec.planes), spec.phases))
    for s, plane in enumerate(spec.planes):
        for t in range(spec.phases):
            frac = t / spec.phases
            if spec.sequence in ("cine", "loc"):
                img, masks = ph.render(plane, "cine", frac, masks=areas is not None)
                if areas is not None:
                    areas[s, t] = masks["lv_cavity"].sum() * plane.spacing[0] * plane.spacing[1]
                real = ph.noisy(img, plane, rng) * gains["cine"]
                trig = frac * rr_ms if spec.sequence == "cine" else 0.0
            elif spec.sequence == "lge":
                img, _ = ph.render(plane, "lge")
                real, trig = ph.noisy(img, plane, rng) * gains["lge"], 0.7 * rr_ms
            elif spec.sequence == "t1":
                img, _ = ph.render(plane, "t1")
                real, trig = ph.noisy(img / 1600.0, plane, rng, scale=0.5) * 1600.0, 0.75 * rr_ms
            elif spec.sequence == "flow":
                real, trig = ph.velocity(plane, frac, rng, spec.extra["venc"]), frac * rr_ms
            else:
                raise ValueError(f"unknown sequence {spec.sequence!r}")
            frames.append((plane, s, t, round(trig, 1), _to_stored(real, spec.slope, spec.intercept)))
    return frames, areas


def generate_study(seed: int, index: int, protocol: str, dicom_dir, patient=None, site: str = "internal") -> dict:
    """Write study `index` under dicom_dir/<index>/ and return its labels, report and PHI.
    `patient` (default: sample_patient(seed, index, site=site)) lets tests pin a pathology or format."""
    p = patient or sample_patient(seed, index, site=site)
    ph = Phantom(p)
    rng = np.random.default_rng([seed, index, 3])
    specs = study_protocol(p, ph, protocol, rng)
    uid = uid_maker(seed, index)
    manufacturer, models = EQUIPMENT[p.vendor]
    model = models[int(rng.integers(len(models)))]
    study = study_attributes(p, manufacturer, model, uid("study"), uid("frame-of-reference"))
    rr_ms = 60000.0 / p.heart_rate
    gains = {"cine": rng.uniform(900, 1500), "lge": rng.uniform(1200, 2000)}
    study_dir = Path(dicom_dir) / f"{index:05d}"
    n_files, measured, cache = 0, None, {}
    hh, mm = int(p.phi["study_time"][:2]), int(p.phi["study_time"][2:4])
    for k, spec in enumerate(specs):
        frames, areas = _render_series(spec, p, ph, rng, rr_ms, gains)
        if areas is not None:
            measured = measure_lv(areas, spec.spacing_between)
        minutes = hh * 60 + mm + 2 * k
        stamp = f"{minutes // 60 % 24:02d}{minutes % 60:02d}{p.phi['study_time'][4:6]}"
        n_files += write_series(study_dir / f"SE{spec.number:04d}", spec, frames, study, uid, rr_ms, stamp, p.compression, cache)
    measured = _reading(p, measured)
    text, mentions = write_report(p, measured, np.random.default_rng([seed, index, 4]))
    text = restyle(text, check_site(p.site)["report"])  # another site's house style: the same facts
    labels = {**p.labels(), **finding_labels(measured, p.sex)}
    row = {
        "accession_number": p.phi["accession_number"], **labels, "pathology": p.pathology,
        "comorbidities": ";".join(p.comorbidities), "ef": measured["ef"], "ef_target": round(p.ef_target, 1),
        "lv_edv_ml": round(measured["lv_edv_ml"], 1), "lv_esv_ml": round(measured["lv_esv_ml"], 1),
        "lv_edd_mm": measured["lv_edd_mm"], "wall_mm": measured["wall_mm"], "septal_mm": round(p.septal_mm, 1),
        "territory": p.territory, "scar_levels": "+".join(p.scar_levels), "transmurality": round(p.transmurality, 3), "wma": round(p.wma, 3),
        "lge_pattern": p.lge_pattern, "rv_scale": round(p.rv_scale, 3), "rv_contraction": round(p.rv_contraction, 3),
        "rv_basal_mm": measured["rv_basal_mm"], "rvef": measured["rvef"], "atria_scale": round(p.atria_scale, 3),
        "mr": MR_GRADES[p.mr], "effusion_mm": measured["effusion_mm"], "heart_rate": round(p.heart_rate, 1), "t_es": round(p.t_es, 3),
        "sex": p.sex, "age": p.age, "vendor": p.vendor, "enhanced": int(p.enhanced), "compression": p.compression,
        "field_t": p.field_t, "fov_mm": round(p.fov_mm * PROTOCOLS[protocol]["fov_scale"], 1), "noise": round(p.noise, 4),
        "yaw_deg": round(p.yaw, 2), "pitch_deg": round(p.pitch, 2), "roll_deg": round(p.roll, 2),
        "inplane_deg": round(p.inplane, 2), "lax_tilt_deg": round(p.lax_tilt, 2), "ti_ms": p.ti_ms,
        "study_dir": f"dicom/{index:05d}", "n_files": n_files,
    }
    phi = {k: p.phi[k] for k in PHI_FIELDS}
    phi["report_mentions"] = mentions
    return {"index": index, "labels": row, "report": text, "phi": phi}


def _work(args):
    seed, index = args[0], args[1]
    try:
        return generate_study(*args)
    except Exception as e:  # one line naming the study; the cause stays chained
        raise RuntimeError(f"synth: study {index} (seed {seed}) failed: {type(e).__name__}: {e}") from e


def read_marker(path) -> dict:
    """A cohort.json (or acdc.json).  One written before the acquisition protocol's key was
    renamed from `preset` to `protocol` reads with `protocol` (its cohort is the same bytes)."""
    done = json.loads(Path(path).read_text())
    if "preset" in done and "protocol" not in done:
        done["protocol"] = done.pop("preset")
    return done


def _marker(studies, seed, protocol, site: str = "internal") -> dict:
    """cohort.json's identifying keys; `site` only for a site other than the default's (whose
    cohort.json stays as it was)."""
    out = {"format_version": FORMAT_VERSION, "studies": studies, "seed": seed, "protocol": protocol}
    return out if site == "internal" else {**out, "site": site}


def generate_cohort(out, studies: int, seed: int, protocol: str = "small", workers: int | None = None,
                    progress: bool = True, overwrite: bool = False, site: str = "internal") -> dict:
    """Write the cohort into `out`; returns the summary also saved as out/cohort.json.
    `site` (`patients.SITES`): 'internal' (the default cohort) or 'external' (another hospital:
    vendors, field strength, matrix, noise, pathology mix and report style of its own)."""
    if studies < 1:
        raise ValueError(f"studies must be >= 1, got {studies}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    check_site(site)
    out = Path(out)
    marker = out / "cohort.json"
    if marker.exists() and not overwrite:
        done = read_marker(marker)
        want = _marker(studies, seed, protocol, site)
        if {k: done.get(k) for k in want} == want and done.get("site", "internal") == site:
            if progress:
                print(f"synth: {out} already holds this cohort ({studies} studies, seed {seed}, {protocol}, site {site})",
                      file=sys.stderr)
            return done
        raise FileExistsError(f"{out}: holds a different cohort ({marker}); pass overwrite=True (--overwrite) to replace it")
    dicom = out / "dicom"
    if dicom.exists():
        if not overwrite and any(dicom.iterdir()):
            raise FileExistsError(f"{dicom}: not empty and no cohort.json; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(dicom)
        marker.unlink(missing_ok=True)
    dicom.mkdir(parents=True)
    workers = max(1, min(workers or os.cpu_count() or 1, studies))
    jobs = [(seed, i, protocol, str(dicom), None, site) for i in range(studies)]
    results = [None] * studies
    t0 = time.perf_counter()

    def note(done):
        if progress:
            el = time.perf_counter() - t0
            print_progress(done, studies, "synth: studies",
                           f"{el:.1f} s elapsed, ~{el / done * (studies - done):.0f} s left")

    if workers == 1:
        for n, job in enumerate(jobs, start=1):
            r = _work(job)
            results[r["index"]] = r
            note(n)
    else:
        # forkserver, not fork: safe when the caller holds threads (a Ray driver, a web server)
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for n, r in enumerate(pool.imap_unordered(_work, jobs, chunksize=2), start=1):
                results[r["index"]] = r
                note(n)
    with open(out / "reports.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["accession_number", "report_text"])
        for r in results:
            w.writerow([r["labels"]["accession_number"], r["report"]])
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow(r["labels"])
    phi = [r["phi"] for r in results]
    values = sorted({v for d in phi for k, v in d.items() if k != "report_mentions"} |
                    {m for d in phi for m in d["report_mentions"]} |
                    {d["patient_name"].replace("^", " ") for d in phi})
    (out / "phi.json").write_text(json.dumps({"studies": phi, "values": values}, indent=1) + "\n", encoding="utf-8")
    counts = {}
    for r in results:
        counts[r["labels"]["pathology"]] = counts.get(r["labels"]["pathology"], 0) + 1
    n_files = sum(r["labels"]["n_files"] for r in results)
    found = {f: sum(int(r["labels"][f] or 0) for r in results) for f in FINDINGS}
    summary = {**_marker(studies, seed, protocol, site), "files": n_files, "pathologies": dict(sorted(counts.items())),
               "findings": found,
               "dicom": "dicom", "reports": "reports.csv", "labels": "labels.csv", "phi": "phi.json"}
    marker.write_text(json.dumps(summary, indent=1) + "\n")
    if progress:
        print(f"synth: wrote {studies} studies ({n_files} files) to {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return summary
