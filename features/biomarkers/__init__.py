"""Pure biomarker computations, one module per family (activity, sleep, gait, cardiac, vitals,
labs): canonical frames in, one row per subject per window out, named by the naming contract."""
