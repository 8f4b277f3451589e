"""The synthetic CMR cohort: the embedded default data set (no real patient data).

    from cmr_ray.synth import generate_cohort
    generate_cohort("cohort", studies=800, seed=0)          # or: cmr-ray synth cohort --studies 800 --seed 0

Writes ``OUT/dicom/<study>/SE<series number>/<n>.dcm``, ``OUT/reports.csv``
(accession_number, report_text), ``OUT/labels.csv`` (labels and every generating
parameter), ``OUT/phi.json`` (every fake PHI string written, per study and as a flat
``values`` list) and ``OUT/cohort.json`` (summary; marks a complete cohort).  The same
seed gives byte-identical files whatever the worker count.

Patients (`patients`): normal 20%, DCM 13%, NICM with mid-wall fibrosis 15%, ICM 20%
(LAD/LCx/RCA territory, subendocardial to transmural), HCM 12%, amyloidosis 10%, isolated
RV dilation 10%; co-morbid RV dilation (DCM, NICM, ICM) and pericardial effusion.  Size,
wall thickness, EF, scar extent, heart orientation, field of view, noise, vendor and
intensities vary within a label.  DCM and NICM are drawn from overlapping cine
distributions: only LGE (mid-wall band) tells them apart.

Labels:
    pathology   nicm icm amyl hcm   acdc
    normal       0    0    0    0    NOR
    dcm          1    0    0    0    DCM     (dilated, no LGE)
    nicm         1    0    0    0    DCM     (mid-wall LGE)
    icm          0    1    0    0    MINF
    hcm          0    0    0    1    HCM
    amyloid      0    0    1    0    HCM     (concentric thickening: nearest ACDC class)
    rv           0    0    0    0    RV
The ACDC class follows the primary pathology (ICM with RV dilation stays MINF).

Images (`phantom`): analytic LV/RV/atria/aorta in a rotated heart frame inside a chest
(lungs, fat, spine, liver), sampled on each series' planes, so every view of a study shows
the same heart and the headers' geometry is exact.  Cine contracts over the cycle (EF, and
an infarct territory's hypokinesis); LGE nulls normal myocardium and enhances the
disease's pattern.  Reports (`report`) give the EF measured on the written SAX stack by
disc summation of the LV blood pool, so numbers agree with the pixels.

Series (`protocol`, `dicomio`): cine SAX stack, cine 2ch/3ch/4ch, LGE SAX stack, LGE
2ch/3ch/4ch, and distractors (3-plane localizer, native T1 map, aortic phase contrast);
names in GE, Siemens, Philips or UK Biobank style.  About 10% of studies (half the
Philips ones) store cine and LGE as Enhanced MR multi-frame; about 10% use a lossless
compressed transfer syntax (RLE, JPEG 2000 or JPEG-LS).  Acquisition protocols
(`protocol.PROTOCOLS`; ``--protocol``, ``data.synth_protocol``): ``small`` (96 px,
10 slices x 12 phases, 179 images = 179 files per study, 18 files for an Enhanced MR study)
and ``paper`` (256 px, 12 slices x 25 phases, 416 images per study, as the paper's Table 2).

Sites (`patients.SITES`): ``generate_cohort(..., site="external")`` (``cmr-ray synth OUT --site
external``) makes a cohort from another hospital: mostly Philips at 3 T, a coarser matrix
over a wider field of view, 10 mm slices, more noise, more ICM and normal studies, and its
own report style (`report.restyle`: other headings, words and units, the same facts); its
labels come from the same findings code.  The default (internal) cohort is unchanged by it.

Limits: a phantom, not anatomy: smooth ellipsoids, no papillary muscles, trabeculae,
valves, breathing or flow artefacts; ellipsoidal ventricles hold ~30% less volume than
real ones of the same diameter (reported EDV is what the images hold); a zoomed field of
view (180-220 mm in ``small``) so that scars stay ~2 px wide at 64 px; one LGE phase;
LAX views are single slices through the LV axis; no TI scout or perfusion series; UK
Biobank had no contrast, so its LGE borrows Siemens names, and its SAX cine is one series
(not one per slice); report text comes from templates, so its vocabulary is narrower than
real reports.
"""
from cmr_ray.synth.cohort import generate_cohort, generate_study

__all__ = ["generate_cohort", "generate_study"]
