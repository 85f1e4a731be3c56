"""The served models: what is loaded, and reloading when an alias moved."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from serving.dependencies import RegistryDep, require_api_key
from serving.models import LoadedModel
from serving.responses import AUTHENTICATED
from serving.schemas import ModelChangeInfo, ModelInfo, ReloadResponse

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(require_api_key)], responses=AUTHENTICATED)


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(name=model.name, reference=model.reference, registered_model=model.registered_model,
                     version=model.version, run_id=model.run_id, task=model.task,
                     feature_service=model.feature_service, features=list(model.features), loaded_at=model.loaded_at)


@router.get("/models", response_model=list[ModelInfo], summary="The loaded models and their registry versions")
def list_models(registry: RegistryDep) -> list[ModelInfo]:
    return [model_info(model) for model in registry.models.values()]


@router.post("/admin/reload", response_model=ReloadResponse,
             summary="Reload every model whose alias now points at another version")
async def reload_models(registry: RegistryDep) -> ReloadResponse:
    changes = await run_in_threadpool(registry.refresh)
    return ReloadResponse(changed=[ModelChangeInfo(name=c.name, old_version=c.old_version, new_version=c.new_version)
                                   for c in changes],
                          models=[model_info(model) for model in registry.models.values()],
                          errors=registry.errors)
