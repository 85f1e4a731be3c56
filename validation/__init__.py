"""PURE. One Great Expectations suite per source, run on exact per-second aggregates of high-rate
signals; the validation report and the reasons a file fails. Imports nothing of the project."""
