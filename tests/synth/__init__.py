"""Tests of the synthetic cohort (cmr_ray.synth)."""
