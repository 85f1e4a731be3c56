"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, from files the service serves itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so at a hospital or study site without
internet ``/docs`` is blank. The pinned ``fastapi-offline`` package (MIT) ships both: Swagger UI 5
(Apache-2.0) and ReDoc 2 (MIT), with FastAPI's favicon; the app mounts its folder at ``STATIC_URL``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-static"

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The Swagger UI and ReDoc files of the pinned ``fastapi-offline`` package."""
    import fastapi_offline

    return StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static")


def _root(request: Request) -> str:
    return request.scope.get("root_path", "")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(openapi_url=f"{root}{request.app.openapi_url}",
                               title=f"{request.app.title}: Swagger UI",
                               swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title}: ReDoc",
                          redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                          redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png", with_google_fonts=False)
