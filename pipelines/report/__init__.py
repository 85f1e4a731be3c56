"""The study report: one self-contained HTML page (``page``) with its figures (``plots``)."""
