"""Run a feature table's plausibility suite (``validation.feature_suites``) before publishing it."""

from __future__ import annotations

import pandas as pd

from features.tables import FeatureTable
from validation.feature_suites import feature_table_checks


def check_feature_table(table: FeatureTable, frame: pd.DataFrame) -> str | None:
    """``None`` when the table may be published, else every failed check in one line."""
    import great_expectations as gx

    from validation.runner import SuiteRunner

    checks = feature_table_checks(list(table.columns))
    runner = SuiteRunner(gx.get_context(mode="ephemeral"))
    runner.register(f"features.{table.name}", checks)
    report = runner.validate(
        f"features.{table.name}", checks, {"rows": frame.reset_index(drop=True)}, {},
        report_id=f"features-{table.name}", file=f"{table.name}.parquet", source=table.name,
        kind="feature_table", sha256="-", rows=len(frame),
    )
    return "; ".join(f"{f.check}: {f.sentence()}" for f in report.failures) or None
