"""The model card of a trained model, as Markdown (Mitchell et al. 2019).

Pure: built from what training returns and the lineage record; the pipeline logs it to MLflow
beside the model (``model_card.md``).

References
----------
Mitchell M, Wu S, Zaldivar A, et al. (2019). Model cards for model reporting. Proceedings of the
Conference on Fairness, Accountability, and Transparency (FAT* '19), 220-229.
doi:10.1145/3287560.3287596
"""

from __future__ import annotations

import math

import pandas as pd

from training.tasks import task_named


def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _with_ci(metrics: dict, name: str) -> str:
    low, high = metrics.get(f"{name}_ci_low"), metrics.get(f"{name}_ci_high")
    point = _number(metrics.get(name))
    return f"{point} (95% CI {_number(low)} to {_number(high)})" if low is not None else point


def model_card_markdown(*, name: str, study_id: str, model: dict, metrics: dict, subgroups: pd.DataFrame | None,
                        lineage: dict) -> str:
    """The model card: intended use, population, data provenance, performance, subgroups, limitations.

    Parameters
    ----------
    name : registered model name.
    study_id : the study.
    model : the model's configuration (task, estimator, feature service, split, acceptance...).
    metrics : evaluation metrics (``training.metrics.endpoint_metrics`` or the anomaly metrics).
    subgroups : ``training.metrics.subgroup_metrics`` table, or None.
    lineage : the run's lineage record (``pipelines.models.train.lineage_record`` plus the split).
    """
    task = task_named(model["task"])
    entity, split = lineage["entity_frame"], lineage.get("split", {})
    lines = [
        f"# Model card: {name}",
        "",
        f"Study `{study_id}`, {task.name} model, estimator `{model['estimator']}`, feature service "
        f"`{model['feature_service']}`, seed {model['seed']}.",
        "",
        "## Intended use",
        task.purpose,
        "",
        "## Population and data",
        f"- {entity['rows']} labelled rows from {entity['subjects']} subjects ({entity['positives']} positive).",
        f"- Split by subject: {len(split.get('train_subjects', []))} subjects for training, "
        f"{len(split.get('test_subjects', []))} for testing, none in both"
        + (f"; site `{split['holdout_site']}` held out." if split.get("holdout_site") else "."),
        f"- Features: {len(lineage['features'])} from views {', '.join(lineage['feature_views'])}"
        + (f"; not used: {', '.join(f'{k} ({v})' for k, v in lineage['features_dropped'].items())}."
           if lineage["features_dropped"] else "."),
        "",
        "## Data provenance",
        f"- Training frame SHA-256 `{lineage['training_frame']['sha256']}` ({lineage['training_frame']['rows']} rows); "
        f"label frame SHA-256 `{entity['sha256']}`.",
        f"- Feast definitions SHA-256 `{lineage['feast_definitions_sha256']}`.",
        f"- {len(lineage['raw_files'])} raw files behind the features, validation outcomes "
        + ", ".join(f"{k}: {v}" for k, v in sorted(lineage["validation_outcomes"].items())) + " (see lineage.json).",
        f"- Code: git commit `{lineage['code']['git_commit']}`"
        + (" (uncommitted changes)" if lineage["code"].get("git_dirty") else "") + ".",
        "",
        "## Performance on the test subjects",
    ]
    if task.card_metrics:
        lines += [f"- {label} {_with_ci(metrics, key)}" for label, key in task.card_metrics]
        lines += ["", "Confidence intervals: percentile bootstrap over subjects."]
    else:
        lines += [f"- {key.replace('_', ' ')}: {_number(value)}" for key, value in sorted(metrics.items())]
    if subgroups is not None and len(subgroups):
        lines += ["", "## Subgroups", "", "| subgroup | value | n | positives | AUROC (95% CI) | note |",
                  "|---|---|---|---|---|---|"]
        for row in subgroups.to_dict("records"):
            lines.append(f"| {row['subgroup']} | {row['value']} | {row['n_samples']} | {row['n_positive']} | "
                         f"{_with_ci(row, 'auroc')} | {row.get('note') or ''} |")
    lines += [
        "",
        "## Limitations",
        "- Trained and tested on one study's cohort; performance elsewhere (other devices, sites, populations) "
        "is unknown until validated there.",
        "- Features carry gaps (non-wear, missing visits): missing values are imputed, and a subject with "
        "little data gets a less reliable score.",
        "- Subgroups with few subjects have wide confidence intervals; small ones are reported but not judged.",
        "",
        "## Promotion criteria",
        "```json",
        str(model.get("acceptance", {})),
        "```",
    ]
    return "\n".join(lines) + "\n"
