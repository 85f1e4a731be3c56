"""Models: training runs logged to MLflow (``train``), the registry's aliases and lineage
(``registry``) with their hash-chained audit log (``audit``), and batch scoring (``scoring``)."""
