"""The feature build: biomarker tables from the curated lake, per subject, on a local process pool
(``local``) or Spark (``spark``); the plausibility checks of the tables (``checks``)."""
