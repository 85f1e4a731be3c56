"""Documentation that works with the network off: the API's ``/docs`` and ``/redoc`` served from local
files, and the study's quality page linking every Great Expectations validation page.

Headless Chromium reaches only 127.0.0.1: every other host name fails to resolve and any other
request goes to a proxy that does not exist, so a page that needs a CDN renders blank (the first
test shows that the restriction bites, with FastAPI's stock page).
"""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.browser import headless_chromium_command
from tests.kafka_broker import free_port

pytestmark = pytest.mark.slow

OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--proxy-server=http://127.0.0.1:9",  # the discard port: nothing listens; loopback bypasses it
           "--virtual-time-budget=15000")


def offline_dom(url: str, profile: Path) -> str:
    """The DOM headless Chromium builds from ``url`` with only the loopback network."""
    done = subprocess.run(headless_chromium_command(profile, *OFFLINE, "--dump-dom", url),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def server(setup):
    """The app under a real uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    from serving.app import create_app

    config = uvicorn.Config(create_app(setup.settings), host="127.0.0.1", port=free_port(), log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if running.started:
                break
            thread.join(0.1)
        assert running.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{config.port}"
    finally:
        running.should_exit = True
        thread.join(30)


def test_a_page_that_needs_a_cdn_renders_blank_under_these_flags(tmp_path):
    from fastapi.openapi.docs import get_swagger_ui_html

    page = tmp_path / "cdn.html"
    page.write_bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="stock page").body)
    assert "cdn.jsdelivr.net" in page.read_text()
    dom = offline_dom(page.as_uri(), tmp_path / "profile")
    assert 'id="swagger-ui"' in dom and "opblock" not in dom  # the script never came


def test_swagger_ui_renders_every_operation_offline(server, client, tmp_path):
    dom = offline_dom(f"{server}/docs", tmp_path / "profile")
    assert "cdn." not in dom and "swagger-ui-bundle.js" in dom
    rendered = set(re.findall(r'class="opblock-summary-path"[^>]*data-path="([^"]+)"', dom))
    documented = set(client.get("/openapi.json").json()["paths"])
    assert documented and rendered == documented


def test_redoc_renders_every_operation_offline(server, client, tmp_path):
    dom = offline_dom(f"{server}/redoc", tmp_path / "profile")
    assert "redoc.standalone.js" in dom
    schema = client.get("/openapi.json").json()
    summaries = [operation["summary"] for path in schema["paths"].values() for operation in path.values()]
    missing = [summary for summary in summaries if summary.replace("&", "&amp;") not in dom]
    assert summaries and not missing, missing


def test_the_quality_page_links_every_validation_page_offline(tmp_path):
    """Great Expectations' Data Docs index lists its pages with scripts from CDNs (empty offline);
    the study's quality page links each of them itself, replaced versions included."""
    from pipelines.config import load_study
    from pipelines.ingest.quality_page import data_docs_site
    from pipelines.ingest.run import ingest_study
    from tests.pipelines.conftest import make_study, write_minute_file

    root = tmp_path / "study"
    config = load_study(make_study(root, n_subjects=3))
    write_minute_file(root / "raw" / "minute" / "S0003_minute.csv", 3, heart_rate_offset=400)  # implausible
    ingest_study(config, workers=1)
    write_minute_file(root / "raw" / "minute" / "S0002_minute.csv", 2, heart_rate_offset=5)  # a new version
    summary = ingest_study(config, workers=1)

    dom = offline_dom(summary.quality_page.resolve().as_uri(), tmp_path / "profile")
    pages = {page.resolve() for page in (data_docs_site(config) / "validations").rglob("*.html")}
    linked = {(summary.quality_page.parent / link).resolve() for link in re.findall(r'href="([^"]+\.html)"', dom)}
    assert len(pages) >= 2 * 6 and linked == pages  # a file and a rows page per checked file version
    rows = {row for row in dom.split("<tr>") if "raw/" in row}
    for path in ("raw/subjects.csv", "raw/endpoints.csv", *(f"raw/minute/S000{i}_minute.csv" for i in (1, 2, 3))):
        row = next(row for row in rows if path in row)
        assert ".file/" in row and ".rows/" in row, row
    quarantined = next(row for row in rows if "S0003_minute.csv" in row)
    assert 'class="quarantined"' in quarantined and "heart_rate_bpm" in quarantined
    assert "none</td>" not in dom.split("Earlier versions")[1]  # S0002's first version is listed there

    # A validation page itself renders its results without the network: they are in the HTML.
    page = next(page for page in pages if "S0003" in page.name and ".rows" in str(page))
    shown = offline_dom(page.as_uri(), tmp_path / "profile")
    assert "Unsuccessful Expectations" in shown and "heart_rate_bpm" in shown
