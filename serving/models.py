"""The models the service scores with, loaded from the MLflow registry and reloaded when an alias moves.

Each served model is a registry reference (``NAME@ALIAS`` or ``NAME/VERSION``). Loading one
resolves the version, loads its fitted scikit-learn pipeline and reads its training run's
``lineage.json`` for the task, the feature service and the model's input names in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.tracking import ModelReference, read_lineage

logger = logging.getLogger(__name__)

# mlflow.sklearn.load_model and mlflow.artifacts resolve models:/ and runs:/ URIs through the
# process-wide tracking URI (MLflow 3.17 takes none per call). One process may hold the registries
# of several studies, each on its own MLflow store (`biomarkers serve A B`, alias polling in
# threads): a registry sets its URI and loads under this lock, or it could load another study's model.
_GLOBAL_TRACKING_URI = threading.Lock()


class ModelNotLoadedError(LookupError):
    """A served model is configured but could not be loaded; the reason says why."""


@dataclass(frozen=True)
class LoadedModel:
    """One model version ready to score."""

    name: str
    """The served name (the key of ``ServingSettings.models``)."""
    reference: str
    registered_model: str
    version: str
    run_id: str
    task: str
    feature_service: str
    feature_views: tuple[str, ...]
    features: tuple[str, ...]
    estimator: Any = field(repr=False)
    loaded_at: datetime


@dataclass(frozen=True)
class ModelChange:
    name: str
    old_version: str | None
    new_version: str


class ModelRegistry:
    """The served models, by served name.

    Parameters
    ----------
    tracking_uri : str
        The MLflow tracking and registry URI.
    references : mapping of str to str
        Served name to ``NAME@ALIAS`` or ``NAME/VERSION``.
    """

    def __init__(self, tracking_uri: str, references: Mapping[str, str]):
        self.tracking_uri = tracking_uri
        self.references = dict(references)
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def models(self) -> dict[str, LoadedModel]:
        """A snapshot of the loaded models, by served name."""
        return dict(self._models)

    @property
    def errors(self) -> dict[str, str]:
        """Why a configured model is not loaded (or failed its last reload), by served name."""
        return dict(self._errors)

    def get(self, name: str) -> LoadedModel:
        """The loaded model ``name``; KeyError if it is not configured, ModelNotLoadedError if not loaded."""
        if name not in self.references:
            raise KeyError(name)
        try:
            return self._models[name]
        except KeyError:
            reason = self._errors.get(name, "not loaded yet")
            raise ModelNotLoadedError(f"model {name} ({self.references[name]}) is not loaded: {reason}") from None

    def _client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def resolve_version(self, reference: str) -> str:
        """The version a reference points at now."""
        parsed = ModelReference.parse(reference)
        if parsed.alias is None:
            return str(parsed.version)
        return str(self._client().get_model_version_by_alias(parsed.name, parsed.alias).version)

    def load(self, reference: str, *, served_name: str | None = None, version: str | None = None) -> LoadedModel:
        """Load the model version a reference points at (or ``version`` of its registered model)."""
        import mlflow
        import mlflow.sklearn

        client = self._client()
        name = ModelReference.parse(reference).name
        version = version or self.resolve_version(reference)
        model_version = client.get_model_version(name, version)
        if not model_version.run_id:
            raise ValueError(f"model {name} version {version} was not logged by a run: it has no lineage.json")
        with _GLOBAL_TRACKING_URI:
            mlflow.set_tracking_uri(self.tracking_uri)
            lineage = read_lineage(model_version.run_id)
            estimator = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        return LoadedModel(
            name=served_name or name, reference=reference, registered_model=name, version=str(version),
            run_id=model_version.run_id, task=lineage.task, feature_service=lineage.feature_service,
            feature_views=tuple(lineage.feature_views), features=tuple(lineage.features),
            estimator=estimator, loaded_at=datetime.now(UTC),
        )

    def load_all(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """Load the configured models not loaded yet (or ``names``); return the errors by served name.

        A model that fails to load is reported, not raised: the others still serve, and readiness
        names the reason.
        """
        with self._lock:
            for name in names if names is not None else self.references:
                if name in self._models and names is None:
                    continue
                try:
                    self._models[name] = self.load(self.references[name], served_name=name)
                    self._errors.pop(name, None)
                except Exception as error:  # any failure (registry, artifact, unpickling) is reported per model
                    self._errors[name] = f"{type(error).__name__}: {error}"
                    logger.error("model %s (%s) did not load: %s", name, self.references[name], error)
            return dict(self._errors)

    def refresh(self) -> list[ModelChange]:
        """Reload every model whose reference now points at another version; return what changed.

        The old version keeps serving until the new one is loaded, and keeps serving if it fails.
        """
        changes = []
        with self._lock:
            for name, reference in self.references.items():
                current = self._models.get(name)
                try:
                    version = self.resolve_version(reference)
                    if current is not None and current.version == version:
                        continue
                    self._models[name] = self.load(reference, served_name=name, version=version)
                    self._errors.pop(name, None)
                except Exception as error:  # reported per model; the loaded version stays
                    self._errors[name] = f"{type(error).__name__}: {error}"
                    logger.error("model %s (%s) did not reload: %s", name, reference, error)
                    continue
                changes.append(ModelChange(name, current.version if current else None, version))
                logger.info("model %s now serves version %s (was %s)", name, version,
                            current.version if current else "none")
        return changes
