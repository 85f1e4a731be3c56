"""The MLflow UI as a governance reviewer sees it: ``mlflow ui`` and its pages rendered in headless Chromium.

Lineage that only the tracking API returns is invisible to a reviewer, who reads the model version page
and the run page of the UI. These helpers start the UI as the README does, render its pages after the
single-page app has fetched its data, and assert what a reviewer must find there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.browser import headless_chromium_command
from tests.kafka_broker import free_port

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from websockets.sync.client import ClientConnection

SERVER_START_SECONDS = 60
PAGE_SECONDS = 60
POLL_SECONDS = 0.25
# Without expected text a page counts as rendered once no request is in flight and its text has stood still this long.
SETTLE_SECONDS = 1.5
# The requests the app's rendering waits on (not images, fonts or long-lived streams).
AWAITED_REQUESTS = {"Document", "Script", "XHR", "Fetch"}


def _tail(log: IO[bytes], characters: int = 3000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-characters:]


def _stop(process: subprocess.Popen, grace_seconds: float = 15) -> None:
    """Stop the process and every child it started (the UI's uvicorn worker; Chromium's helpers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)
    with contextlib.suppress(ProcessLookupError):  # whatever of the group outlived the leader or the grace
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def mlflow_ui(backend_store_uri: str, port: int | None = None) -> Iterator[str]:
    """``mlflow ui --backend-store-uri URI`` as the README starts it; yields its base URL, stops it after.

    Job execution is switched off: the UI pages a reviewer reads do not use it, and its worker processes
    would only take CPU and write to the store while it is being read.
    """
    port = port or free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", backend_store_uri,
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as log:
        # A folder of its own: `mlflow ui` serves artifacts of new experiments from ./mlartifacts.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
                                  env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while not _answers(f"{url}/health"):
                if server.poll() is not None:
                    pytest.fail(f"`{' '.join(command)}` exited with {server.returncode}:\n{_tail(log)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"`{' '.join(command)}` did not answer in {SERVER_START_SECONDS} s:\n{_tail(log)}")
                time.sleep(0.5)
            yield url
        finally:
            _stop(server)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


class ChromiumPage:
    """The one tab of a headless Chromium, driven over the DevTools protocol.

    ``--dump-dom`` cannot click, and a page of the UI shows part of its data only after a click (the
    datasets of a run beyond the first); so the tab is driven instead, and read as a user reads it
    (``document.body.innerText``) once the app has fetched its data.
    """

    def __init__(self, websocket: ClientConnection) -> None:
        self._websocket = websocket
        self._last_id = 0
        self._in_flight: set[str] = set()
        self._call("Network.enable")  # its events tell which requests are in flight

    def _call(self, method: str, **params: Any) -> dict:
        self._last_id += 1
        self._websocket.send(json.dumps({"id": self._last_id, "method": method, "params": params}))
        while True:  # events arrive in between
            message = json.loads(self._websocket.recv())
            if message.get("id") == self._last_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                return message["result"]
            self._note_request(message)

    def _note_request(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        # A request without the document's loader is a shared worker's (the UI's telemetry): never awaited.
        if method == "Network.requestWillBeSent" and params.get("type") in AWAITED_REQUESTS and params.get("loaderId"):
            self._in_flight.add(params["requestId"])
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            self._in_flight.discard(params["requestId"])

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        answer = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r} raised in the page: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def open(self, url: str) -> None:
        """Load the URL as a new document, so that no text of the page before can pass for this one's.

        (Between two routes of the single-page app the browser would only change the hash.)
        """
        self._call("Page.navigate", url="about:blank")
        self._in_flight.clear()
        self._call("Page.navigate", url=url)

    def text(self, expect: Iterable[str] = (), timeout: float = PAGE_SECONDS) -> str:
        """What the page shows, once it shows every expected string.

        With nothing expected: once no request the app waits on is in flight and the text has stood still
        for ``SETTLE_SECONDS``. At the deadline, whatever it shows then: callers assert on it and say what
        is missing.
        """
        expected = list(expect)
        deadline = time.monotonic() + timeout
        shown, still_since = None, time.monotonic()
        while True:
            now_shown = self.evaluate("document.body ? document.body.innerText : ''")
            if now_shown != shown:
                shown, still_since = now_shown, time.monotonic()
            if expected and all(item in shown for item in expected):
                return shown
            if (not expected and shown.strip() and not self._in_flight
                    and time.monotonic() - still_since >= SETTLE_SECONDS):
                return shown
            if time.monotonic() > deadline:
                return shown
            time.sleep(POLL_SECONDS)

    def links(self) -> list[tuple[str, str]]:
        """``(text, href)`` of every link in the DOM, the href resolved as the browser follows it."""
        return [tuple(link) for link in self.evaluate(
            "Array.from(document.querySelectorAll('a[href]'), a => [a.innerText, a.href])")]

    def click_buttons(self, text_pattern: str) -> int:
        """Click every button whose whole text matches the regular expression; how many were clicked."""
        return self.evaluate(f"""(() => {{
            const pattern = new RegExp({json.dumps(f"^(?:{text_pattern})$")});
            const buttons = Array.from(document.querySelectorAll('button'))
                .filter(button => pattern.test(button.innerText.trim()));
            buttons.forEach(button => button.click());
            return buttons.length;
        }})()""")


@contextmanager
def headless_chromium(profile: Path) -> Iterator[ChromiumPage]:
    """Debian's Chromium, headless, with a profile of the caller's own; yields its tab, quits after."""
    from websockets.sync.client import connect

    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"  # where Chromium writes the port it chose
    port_file.unlink(missing_ok=True)
    command = headless_chromium_command(profile, "--remote-debugging-port=0", "--window-size=1400,2000", "about:blank")
    with tempfile.TemporaryFile() as log:
        browser = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + PAGE_SECONDS
            while not port_file.exists() or not port_file.read_text().strip():
                if browser.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"headless Chromium did not start (exit {browser.poll()}):\n{_tail(log)}")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                tab = next(target for target in json.load(answer) if target["type"] == "page")
            with connect(tab["webSocketDebuggerUrl"], max_size=None) as websocket:
                yield ChromiumPage(websocket)
        finally:
            _stop(browser)


def rendered_text(url: str, profile: Path, expect: Iterable[str] = ()) -> str:
    """What a user sees on a page of the MLflow single-page app, once it shows what was fetched for it.

    Waits until every expected string shows (or, with none, until the page has settled); at the
    deadline returns what it shows then.
    """
    with headless_chromium(profile) as page:
        page.open(url)
        return page.text(expect)


def _missing(text: str, expected: Iterable[str]) -> list[str]:
    return [item for item in expected if item not in text]


def _excerpt(text: str, characters: int = 4000) -> str:
    return re.sub(r"\s+", " ", text)[:characters]


def _model_card_title(client: MlflowClient, run_id: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        card = Path(client.download_artifacts(run_id, "model_card.md", folder)).read_text()
    return next(line.lstrip("#").strip() for line in card.splitlines() if line.startswith("#"))


def assert_lineage_visible(base_url: str, model_name: str, alias: str, profile: Path, tracking_uri: str) -> None:
    """A reviewer finds the lineage of the model version behind ``alias`` in the UI at ``base_url``.

    On the model version page: the feature service, the training frame's SHA-256, the validation outcomes
    and a link to the model card; on its run's page: the feature service, every dataset's digest and the
    validation outcomes; following the link: the model card itself.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(model_name, alias)
    run = client.get_run(version.run_id)
    feature_service = run.data.params["feature_service"]
    outcomes = run.data.tags["lineage.validation_outcomes"]
    training_sha256 = run.data.tags["lineage.training_frame_sha256"]
    digests = [item.dataset.digest for item in run.inputs.dataset_inputs]
    card_title = _model_card_title(client, run.info.run_id)

    version_url = f"{base_url}/#/models/{quote(model_name, safe='')}/versions/{version.version}"
    run_url = f"{base_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    with headless_chromium(profile) as page:
        page.open(version_url)
        expected = [feature_service, training_sha256, outcomes, "model_card.md"]
        shown = page.text(expected)
        assert not _missing(shown, expected), (
            f"the model version page {version_url} ({model_name}@{alias}) does not show "
            f"{_missing(shown, expected)}; it shows: {_excerpt(shown)}")
        card_links = [href for _, href in page.links() if "model_card.md" in href]
        assert card_links, (f"the model version page {version_url} has no link to the model card; its links: "
                            f"{page.links()}")

        page.open(run_url)
        page.text([feature_service, outcomes])  # the run has arrived, and with it the datasets' "+N" button
        page.click_buttons(r"\+\d+")  # the run's datasets beyond the first show in a popover
        expected = [feature_service, outcomes, *digests]
        shown = page.text(expected)
        assert not _missing(shown, expected), (
            f"the run page {run_url} does not show {_missing(shown, expected)}; it shows: {_excerpt(shown)}")

        page.open(card_links[0])
        shown = page.text([card_title])
        assert card_title in shown, (
            f"the model card link {card_links[0]} on {version_url} does not lead to the model card "
            f"(no {card_title!r}); it shows: {_excerpt(shown)}")
