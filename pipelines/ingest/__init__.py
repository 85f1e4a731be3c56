"""Ingestion: raw files read (``readers``), units converted (``units``), validated, committed to the
curated lake one transaction per file (``lake``), every outcome in the catalog (``catalog``), and the
study's quality page (``quality_page``). ``run`` drives it per study."""
