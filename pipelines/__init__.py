"""EDGE. The study's flow, one subpackage per stage: ``ingest`` (raw files to the curated lake),
``build`` (feature tables), ``models`` (training runs, registry, audit, scoring), ``report``,
``demo`` (the synthetic study); ``config`` (the validated ``StudyConfig``) and ``cli`` (the
``biomarkers`` command) on top."""
