"""Run a source's suite through Great Expectations and turn the result into a ``ValidationReport``.

Validation runs in an ephemeral context per process: nothing is shared, so any number of
processes validate at once. The raw Great Expectations results are kept (``SuiteRunner.results``)
and published afterwards, in one place, to a file context whose Data Docs the study keeps
(``publish``). Great Expectations is imported here, never at package import.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from validation.causes import likely_cause
from validation.report import MAX_LOCATIONS, Failure, Outcome, ValidationReport
from validation.suites import FILE_BATCH, SECONDS_BATCH, Check

_DATASOURCE = "canonical_frames"


def quiet_context(context: Any) -> Any:
    """Switch off Great Expectations' progress bars (they would garble the CLI's own)."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


class SuiteRunner:
    """Registers suites in a Great Expectations context and validates batches against them.

    Parameters
    ----------
    context : a Great Expectations ``AbstractDataContext`` (file or ephemeral).
    """

    def __init__(self, context: Any):
        self.context = quiet_context(context)
        self._definitions: dict[str, Any] = {}
        self.results: list[tuple[str, str, Any]] = []  # (suite, file, GE result) not yet published

    def register(self, suite_name: str, checks: list[Check]) -> None:
        """Create or update one suite and validation definition per batch of ``checks``."""
        import great_expectations as gx
        import great_expectations.expectations as gxe

        # Get, never re-add: re-adding the data source would orphan the definitions made before.
        datasource = _get_or_add(self.context.data_sources.get, self.context.data_sources.add_pandas, _DATASOURCE)
        for batch_name in sorted({c.batch for c in checks}):
            asset = _get_or_add(datasource.get_asset, datasource.add_dataframe_asset, batch_name)
            definition = _get_or_add(asset.get_batch_definition, asset.add_batch_definition_whole_dataframe, "whole")
            expectations = [
                getattr(gxe, c.expectation)(**c.kwargs, meta={"check": c.check, "position": i, **c.meta})
                for i, c in enumerate(checks)
                if c.batch == batch_name
            ]
            name = f"{suite_name}.{batch_name}"
            # Rewrite only what changed: another process validating with the stored suite would
            # otherwise find it "changed since it was last saved" and refuse to run.
            suite = _stored(self.context.suites.get, name)
            if suite is None or _content(suite.expectations) != _content(expectations):
                suite = self.context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
            validation = _stored(self.context.validation_definitions.get, name)
            if validation is None or validation.suite.id != suite.id or validation.data.id != definition.id:
                validation = self.context.validation_definitions.add_or_update(
                    gx.ValidationDefinition(name=name, data=definition, suite=suite)
                )
            self._definitions[name] = validation

    def validate(
        self,
        suite_name: str,
        checks: list[Check],
        batches: dict[str, pd.DataFrame],
        severities: dict[str, str],
        *,
        report_id: str,
        file: str,
        source: str,
        kind: str,
        sha256: str,
        rows: int | None,
    ) -> ValidationReport:
        """Validate every batch and collect every failure (never stop at the first).

        ``severities`` maps a check name to ``reject`` or ``warn``. ``suite_name`` must have
        been registered with the same ``checks``.
        """
        from great_expectations.core.run_identifier import RunIdentifier

        failures: list[Failure] = []
        suites = []
        for batch_name, batch in batches.items():
            name = f"{suite_name}.{batch_name}"
            definition = self._definitions.get(name) or self.context.validation_definitions.get(name)
            suites.append(name)
            run_id = RunIdentifier(run_name=f"{report_id}.{batch_name}", run_time=datetime.now(UTC))
            # Most files pass: a yes/no run costs ~40 % less than one that collects the unexpected
            # rows, which only a failed batch needs, so only a failed batch runs a second time.
            result = definition.run(batch_parameters={"dataframe": batch},
                                    result_format={"result_format": "BOOLEAN_ONLY"}, run_id=run_id)
            if not result.success:
                result = definition.run(
                    batch_parameters={"dataframe": batch},
                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_LOCATIONS},
                    run_id=run_id,
                )
            self.results.append((name, file, result))
            for item in result.results:
                if item.success:
                    continue
                check = checks[item.expectation_config.meta["position"]]
                failure = _failure(check, item, batch_name, batch, severities)
                if failure is not None:
                    failures.append(failure)
        failures.sort(key=lambda f: (f.severity != "reject", f.check))
        if any(f.severity == "reject" for f in failures):
            outcome = Outcome.REJECTED
        else:
            outcome = Outcome.WARNED if failures else Outcome.PASSED
        return ValidationReport(
            report_id=report_id,
            file=file,
            source=source,
            kind=kind,
            sha256=sha256,
            checked_at=datetime.now(UTC).isoformat(),
            outcome=outcome,
            rows=rows,
            seconds=len(batches[SECONDS_BATCH]) if SECONDS_BATCH in batches else None,
            failures=failures,
            suites=suites,
        )


def publish(context: Any, suites: dict[str, list[Check]], results: list[tuple[str, str, Any]]) -> Path | None:
    """Store suites and validation results in a (file) context and build its Data Docs.

    Parameters
    ----------
    context : the study's Great Expectations file context. The caller serialises publishers.
    suites : suite name (``<study>.<source>``) -> its checks, registered if new or changed.
    results : ``(suite name with batch, file, result)`` from ``SuiteRunner.results``.

    Returns the Data Docs index page; only the new results are rendered.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    runner = SuiteRunner(context)
    for name, checks in suites.items():
        runner.register(name, checks)
    keys = []
    for suite_name, file, result in results:
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=result.meta["run_id"],
            batch_identifier=re.sub(r"[^0-9A-Za-z._-]+", "__", file),  # the store refuses "/" in keys
        )
        context.validation_results_store.set(key, result)
        keys.append(key)
    if not keys:  # nothing new: leave the existing pages alone instead of rebuilding them all
        site = context.get_docs_sites_urls()
        return Path(site[0]["site_url"].removeprefix("file://")) if site and site[0].get("site_url") else None
    sites = context.build_data_docs(resource_identifiers=keys)
    for url in sites.values():
        return Path(url.removeprefix("file://"))
    return None


def _stored(get, name: str):
    from great_expectations.exceptions import DataContextError

    try:
        return get(name)
    except (LookupError, ValueError, DataContextError):  # each GE store raises its own "not found"
        return None


def _content(expectations: list) -> list[dict]:
    """Expectations as plain data without their generated ids, to compare two suites."""
    plain = []
    for expectation in expectations:
        document = expectation.configuration.to_json_dict()
        document.pop("id", None)
        plain.append(document)
    return plain


def _get_or_add(get, add, name: str):
    found = _stored(get, name)
    return add(name) if found is None else found


def _failure(
    check: Check, item: Any, batch_name: str, batch: pd.DataFrame, severities: dict[str, str]
) -> Failure | None:
    exception = item.exception_info or {}
    raised = exception.get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception") for v in exception.values()
    )
    column = check.column
    if raised and column is not None and column not in batch:
        return None  # the column is absent: the required_columns check already reports it
    result = item.result or {}
    index = list(result.get("partial_unexpected_index_list") or [])
    missing_columns = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
    if missing_columns:
        # Per-axis NaN counts stand for their axes in the seconds batch: name the axis itself.
        missing = [name.removesuffix("_nan") if batch_name == SECONDS_BATCH else name for name in missing_columns]
        return Failure(check=check.check, severity=severities.get(check.check, "reject"),
                       expectation=_describe(check), column=None, unit_of_location="columns",
                       unexpected_count=len(missing), locations=missing,
                       likely_cause=likely_cause(check, batch, [], None))
    failure = Failure(
        check=check.check,
        severity=severities.get(check.check, "reject"),
        expectation=_describe(check),
        column=column,
        unit_of_location=_unit_of_location(batch_name, column),
        unexpected_count=result.get("unexpected_count"),
        element_count=result.get("element_count"),
        locations=_locations(batch_name, batch, index, column),
        examples=[_plain(v) for v in (result.get("partial_unexpected_list") or [])[:5]],
        observed_value=_plain(result.get("observed_value")),
    )
    if raised:
        failure.likely_cause = "the check could not run: " + _first_message(exception)
    else:
        failure.likely_cause = likely_cause(check, batch, index, result.get("observed_value"))
    return failure


def _unit_of_location(batch_name: str, column: str | None) -> str:
    if batch_name == FILE_BATCH:
        return "subjects" if column == "subject_id" else "fields"
    return "seconds" if batch_name == SECONDS_BATCH else "rows"


def _locations(batch_name: str, batch: pd.DataFrame, index: list[Any], check_column: str | None) -> list[Any]:
    if batch_name == SECONDS_BATCH:
        return [batch.loc[i, "second"].strftime("%Y-%m-%dT%H:%M:%SZ") for i in index]
    if batch_name == FILE_BATCH:
        column = "subject_id" if check_column == "subject_id" else "field"
        return [batch.loc[i, column] for i in index]
    return [int(i) + 1 for i in index]  # 1-based data rows, as a person counts them


def _describe(check: Check) -> str:
    """``expect_column_values_to_be_between(value, 0.1, 20) where analyte=="creatinine"``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", check.expectation).lower()
    kwargs = check.kwargs
    arguments = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    if "column_list" in kwargs:
        arguments.append("+".join(kwargs["column_list"]))
    if "column_set" in kwargs:
        arguments.append(f"{{{', '.join(kwargs['column_set'])}}}")
    if "min_value" in kwargs or "max_value" in kwargs:
        arguments += [kwargs.get("min_value"), kwargs.get("max_value")]
    if "value_set" in kwargs:
        values = kwargs["value_set"]
        arguments.append(f"{{{', '.join(map(str, values[:6]))}{', ...' if len(values) > 6 else ''}}}")
    if "regex" in kwargs:
        arguments.append("direct-identifier pattern")
    if "mostly" in kwargs:
        arguments.append(f"mostly={kwargs['mostly']:.2f}")
    text = f"{snake}({', '.join(_short(a) for a in arguments)})"
    if "row_condition" in kwargs:
        text += f" where {kwargs['row_condition']}"
    return text


def _short(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, timestamps to ISO strings."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _first_message(exception: dict) -> str:
    if exception.get("exception_message"):
        return str(exception["exception_message"])
    for value in exception.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return str(value["exception_message"])
    return "unknown error"
