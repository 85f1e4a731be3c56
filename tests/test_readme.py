"""The README, tried as a new user would: every command in it runs, as written, in a copy of this checkout.

One test walks the README from top to bottom in a copy of the checkout (what a clone holds; this
environment's ``.venv`` beside it), in one bash session, so that
variables such as ``KEY`` carry from one command to the next as they do for a reader. A command
that runs a server (written with ``&``, or one a reader leaves running in a terminal) is started in
the background and waited for; the servers of a code block are stopped at the block's end. After
some commands the test checks what the reader was promised: the scores, the lineage in the MLflow
UI, an event turned into an alert, the new biomarker in the training run.

The only commands not run exactly as written are listed in ``EQUIVALENTS`` (a smaller demo study,
small benchmark sizes) and ``NOT_RUN`` (``make test`` is this suite), each with its reason; a
command added to the README is run by this test without any change here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
README = REPOSITORY_ROOT / "README.md"
SMALL_DEMO = "--subjects 80 --days 8"  # 80 subjects: the endpoint model meets its criteria and becomes champion

# README command -> the command this test runs instead, and why. Everything else runs verbatim.
EQUIVALENTS = {
    "make demo": (f".venv/bin/biomarkers demo {SMALL_DEMO}",
                  "the Makefile's demo recipe (checked below) on a smaller study: minutes, not the suite's budget"),
    ".venv/bin/biomarkers demo": (f".venv/bin/biomarkers demo {SMALL_DEMO}", "the same smaller study"),
    ".venv/bin/biomarkers generate-demo data/demo --seed 7": (
        f".venv/bin/biomarkers generate-demo data/demo --seed 7 {SMALL_DEMO}",
        "the same smaller study: byte-identical files, so nothing is ingested again"),
    ".venv/bin/python benchmarks/ingest.py": (".venv/bin/python benchmarks/ingest.py --days 1 --rate 25 --repeat 1",
                                              "benchmarks at small sizes: they run and print their figures"),
    ".venv/bin/python benchmarks/biomarkers.py": (
        ".venv/bin/python benchmarks/biomarkers.py --days 1 --rate 25 --repeat 1 --subjects 2", "small sizes"),
    ".venv/bin/python benchmarks/retrieval.py": (
        ".venv/bin/python benchmarks/retrieval.py --subjects 50 --days 3 --rows 500 --file-rows 200 --repeat 1",
        "small sizes"),
    ".venv/bin/python benchmarks/online.py": (
        ".venv/bin/python benchmarks/online.py --subjects 50 --days 3 --requests 20 --batch-requests 5 --rounds 1 "
        "--warmup 3 --concurrency 1", "small sizes"),
    ".venv/bin/python benchmarks/stream.py": (
        ".venv/bin/python benchmarks/stream.py --subjects 50 --events 2000 --rate 200 --seconds 3 --warmup 1",
        "small sizes"),
    ".venv/bin/python benchmarks/scale.py": (".venv/bin/python benchmarks/scale.py --subjects 4 --days 2 --repeat 1",
                                             "small sizes"),
}
NOT_RUN = {"make test": "this suite is what `make test` runs"}

# Commands a reader leaves running: the address that answers once each is up (None: nothing to poll).
SERVERS = {
    ".venv/bin/biomarkers serve": "http://127.0.0.1:8000/healthz",
    ".venv/bin/mlflow ui": "http://127.0.0.1:5000/health",
    ".venv/bin/feast -c data/demo/.platform/feast ui": "http://127.0.0.1:8888/",
    ".venv/bin/feast -c data/demo/.platform/feast serve": "http://127.0.0.1:6566/health",
    "$BROKER broker": "tcp://127.0.0.1:9092",
    ".venv/bin/biomarkers stream": None,
}

@dataclass
class Block:
    """One ```bash block of the README: its commands (continuation lines joined) and the heading above it."""

    heading: str
    commands: list[str] = field(default_factory=list)


def readme_blocks(text: str) -> list[Block]:
    blocks, heading = [], ""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        if line.strip() != "```bash":
            continue
        block, pending = Block(heading), ""
        for body in lines:
            if body.strip() == "```":
                break
            pending += body.strip()
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            if pending and not pending.startswith("#"):
                block.commands.append(pending)
            pending = ""
        blocks.append(block)
    return blocks


def without_comment(command: str) -> str:
    """The command without its trailing ``# ...`` comment (a ``#`` inside quotes is kept), as bash reads it."""
    quote = None
    for index, character in enumerate(command):
        if quote:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "#" and index > 0 and command[index - 1].isspace():
            return command[:index].rstrip()
    return command


def server_of(command: str) -> str | None:
    return next((prefix for prefix in SERVERS if without_comment(command).startswith(prefix)), None)


class Shell:
    """One bash session in the copy, as a reader's terminal: commands in order, variables kept.

    Output goes to a log file (servers in the background write there too); each command is
    followed by an end marker carrying its exit status. Job control is on, so each background
    server is a process group of its own and is stopped with its children.
    """

    def __init__(self, cwd: Path, environment: dict[str, str], log: Path):
        self.log = log
        self.log_file = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE, cwd=cwd,
                                        env=environment, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self.seconds: dict[str, float] = {}  # command -> wall time, to see where the test's time goes
        self.run("set -m")

    def run(self, command: str, timeout_s: float = 600) -> tuple[int, str]:
        marker = uuid.uuid4().hex
        start = self.log.stat().st_size
        # The status is kept first: the empty line (so that the marker starts a line) would reset $?.
        end = f"README_STATUS=$?; echo ''\necho \"__end_{marker}_${{README_STATUS}}__\"\n"
        self.process.stdin.write(f"{command}\n{end}")
        self.process.stdin.flush()
        began = time.monotonic()
        deadline = began + timeout_s
        pattern = re.compile(rf"__end_{marker}_(\d+)__")
        while True:
            output = self.log.read_bytes()[start:].decode(errors="replace")
            found = pattern.search(output)
            if found:
                self.seconds[command] = self.seconds.get(command, 0.0) + time.monotonic() - began
                return int(found.group(1)), output[:found.start()]
            if self.process.poll() is not None:
                raise AssertionError(f"the shell exited while running {command!r}:\n{output[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{command!r} did not finish in {timeout_s:.0f} s:\n{output[-3000:]}")
            time.sleep(0.2)

    def start(self, command: str) -> int:
        """Run ``command`` in the background (adding ``&`` where the README leaves it running); its pid."""
        command = without_comment(command).rstrip()
        command = command if command.endswith("&") else command + " &"
        status, output = self.run(f"{command}\necho \"__pid=$!__\"")
        found = re.search(r"__pid=(\d+)__", output)
        assert status == 0 and found, f"{command!r} did not start:\n{output[-2000:]}"
        return int(found.group(1))

    def close(self) -> None:
        """Stop the shell and everything it started (with job control, each job is a process group of its own)."""
        import psutil

        for process in [*psutil.Process(self.process.pid).children(recursive=True), self.process]:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()
        self.process.wait(10)
        self.log_file.close()


def stop(pid: int) -> None:
    """Stop a background job's whole process group (mlflow ui and feast ui start workers of their own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_until_up(address: str, shell: Shell, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if address.startswith("tcp://"):
                host, port = address.removeprefix("tcp://").split(":")
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            with urllib.request.urlopen(address, timeout=5) as response:
                if response.status < 500:
                    return
        time.sleep(0.5)
    log = shell.log.read_text(errors="replace")
    raise AssertionError(f"{address} did not answer in {timeout_s:.0f} s:\n{log[-3000:]}")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """What a clone of this checkout holds (its files as git lists them, uncommitted work included, nothing
    ignored such as data/), with this environment's .venv beside them."""
    root = tmp_path_factory.mktemp("readme") / "digital-biomarkers"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPOSITORY_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPOSITORY_ROOT / name
        if source.is_file():  # not a file deleted in the working tree
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return root


def test_every_readme_command_is_run_or_has_a_reason() -> None:
    blocks = readme_blocks(README.read_text())
    commands = [without_comment(command).strip() for block in blocks for command in block.commands]
    assert len(commands) > 30 and "make demo" in commands and "make test" in commands
    unused = [command for command in (*EQUIVALENTS, *NOT_RUN) if command not in commands]
    assert unused == [], f"equivalents of commands the README no longer has: {unused}"
    # `make demo` is the main job: the equivalent above is the Makefile's recipe with a smaller study.
    makefile = (REPOSITORY_ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(INSTALLED\)\n\t\$\(BIN\)/biomarkers demo\n", makefile, re.M)


def test_the_shell_reports_each_commands_status_and_keeps_variables(tmp_path) -> None:
    """The runner itself: a failing command is seen as failing, and a variable set by one command is
    there for the next, as in a reader's terminal."""
    shell = Shell(tmp_path, dict(os.environ), tmp_path / "shell.log")
    try:
        assert shell.run("false")[0] == 1
        assert shell.run("KEY=$(echo secret-value)")[0] == 0
        status, output = shell.run('echo "key is $KEY"; exit_code_of() { return 3; }; exit_code_of')
        assert status == 3 and "key is secret-value" in output
    finally:
        shell.close()


def test_the_readme_study_yaml_example_ingests_real_recordings(tmp_path, devices_dir: Path) -> None:
    """"Bringing a real study", step by step: the README's study.yaml over a real AX6 .cwa file, a real
    ActiGraph .gt3x file and ActiLife's CSV export of it."""
    from pipelines.config import load_study
    from pipelines.ingest.run import ingest_study

    example = re.search(r"```yaml\n(\s*study_id: my_study\n.*?)\s*```", README.read_text(), re.S)
    assert example, "the README's study.yaml example"
    document = yaml.safe_load(textwrap.dedent(example.group(1)))
    assert document["data_root"] == "/data/my_study"
    document["data_root"] = str(tmp_path)
    (tmp_path / "raw" / "wrist").mkdir(parents=True)
    (tmp_path / "raw" / "subjects.csv").write_text(
        "subject_id,site,arm,sex,age_years,enrolled_on\nS0001,SITE-A,control,F,61,2024-01-02\n")
    (tmp_path / "raw" / "endpoints.csv").write_text(
        "subject_id,index_time,endpoint,outcome\nS0001,2024-03-01T00:00:00Z,hospitalization_90d,0\n")
    shutil.copy(REPOSITORY_ROOT / "pipelines" / "demo" / "assets" / "ax6_sample.cwa",
                tmp_path / "raw" / "wrist" / "S0001_wrist.cwa")
    # A real ActiGraph recording and ActiLife's CSV export of it, for the .gt3x and vendor-preset sources.
    (tmp_path / "raw" / "actigraph").mkdir()
    shutil.copy(devices_dir / "actigraph_neo.gt3x", tmp_path / "raw" / "actigraph" / "S0001_wrist.gt3x")
    shutil.copy(devices_dir / "actigraph_neo_actilife_export.csv", tmp_path / "raw" / "actigraph" / "S0001_wrist.csv")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(document))

    summary = ingest_study(load_study(tmp_path / "study.yaml"), workers=1)

    outcomes = {outcome.source: (outcome.status, outcome.reason) for outcome in summary.outcomes}
    assert outcomes == {name: ("curated", None) for name in ("subjects", "endpoints", "wrist", "wrist_actigraph",
                                                                    "wrist_actilife")}


def test_the_readme_works_as_written(checkout: Path, tmp_path: Path) -> None:
    """Top to bottom, as a new user would run it after the two set-up commands."""
    busy = [port for port in (8000, 5000, 8888, 6566, 9092) if not port_is_free(port)]
    if busy:
        pytest.skip(f"the README's ports are in use on this machine: {busy}")
    environment = {**os.environ, "PYTHONPATH": str(checkout), "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    shell = Shell(checkout, environment, tmp_path / "shell.log")
    checks = ReadmeChecks(checkout, tmp_path)
    ran: list[str] = []
    try:
        for block in readme_blocks(README.read_text()):
            if block.heading.startswith("Adding a biomarker"):
                add_the_readme_biomarker(checkout)
            servers: list[int] = []
            try:
                for written in block.commands:
                    command = without_comment(written).strip()
                    if command in NOT_RUN:
                        continue
                    command = EQUIVALENTS.get(command, (command,))[0]
                    server = server_of(command)
                    if server is not None:
                        servers.append(shell.start(command))
                        if SERVERS[server]:
                            wait_until_up(SERVERS[server], shell)
                        checks.after(server, shell)
                    else:
                        status, output = shell.run(command)
                        assert status == 0, f"README ({block.heading}): {written!r} exited {status}:\n{output[-4000:]}"
                        checks.after(command, shell, output)
                    ran.append(written)
            finally:
                for pid in servers:
                    stop(pid)
    finally:
        shell.close()
        slowest = sorted(shell.seconds.items(), key=lambda item: -item[1])[:15]
        print("slowest README commands (s):", *(f"{seconds:7.1f}  {command[:110]}" for command, seconds in slowest),
              sep="\n")  # shown with `pytest -s` or on failure
    unchecked = set(ReadmeChecks.EXPECTED) - checks.done
    assert unchecked == set(), f"promised results not checked: {unchecked}"


class ReadmeChecks:
    """What the README promises after some of its commands, checked where it is promised."""

    EXPECTED = ("demo", "report", "score", "features", "lineage", "reproduce", "mlflow_ui", "new_biomarker",
                "stream_alert", "feast_serve", "benchmark")

    def __init__(self, checkout: Path, tmp_path: Path):
        self.checkout = checkout
        self.tmp_path = tmp_path
        self.done: set[str] = set()
        self.trainings = 0

    def after(self, command: str, shell: Shell, output: str = "") -> None:
        if command.startswith(".venv/bin/biomarkers demo"):
            assert "Where to look next" in output and "study_report.html" in output, output[-3000:]
            assert "to champion: accepted" in output or "is already version" in output, output[-3000:]
            self.done.add("demo")
        elif command.startswith(".venv/bin/biomarkers report"):
            path = Path(re.search(r"study report: (\S+)", output).group(1))
            assert path.is_file() and "<svg" in path.read_text(), path
            self.done.add("report")
        elif command.startswith("curl -s -X POST localhost:8000/v1/score"):
            scores = json.loads(output[output.index("{"):output.rindex("}") + 1])
            assert [row["subject_id"] for row in scores["scores"]] == ["S0001", "S0002"], scores
            self.done.add("score")
        elif command.startswith("curl -s localhost:8000/v1/subjects/S0001/features"):
            assert '"creatinine_last_mg_dl"' in output, output[-2000:]
            self.done.add("features")
        elif command.startswith(".venv/bin/biomarkers lineage"):
            assert "demo-hospitalization_risk" in output and ".csv" in output, output[-2000:]
            self.done.add("lineage")
        elif command.startswith(".venv/bin/biomarkers reproduce"):
            assert "reproduced" in output, output[-2000:]
            self.done.add("reproduce")
        elif command == ".venv/bin/mlflow ui":
            from tests.mlflow_ui import assert_lineage_visible

            tracking_uri = f"sqlite:///{self.checkout / 'data' / 'demo' / '.platform' / 'mlflow.db'}"
            assert_lineage_visible("http://127.0.0.1:5000", "demo-hospitalization_risk", "champion",
                                   self.tmp_path / "chromium", tracking_uri)
            self.done.add("mlflow_ui")
        elif command.startswith(".venv/bin/biomarkers train") and "non_movement" in (
                self.checkout / "features" / "tables.py").read_text():
            self.check_new_biomarker_trained()
        elif command == ".venv/bin/biomarkers stream":
            self.check_an_event_becomes_an_alert()
        elif command.startswith("curl -s -X POST localhost:6566/get-online-features"):
            answer = json.loads(output[output.index("{"):output.rindex("}") + 1])
            assert "S0003" in json.dumps(answer["results"]), answer
            self.done.add("feast_serve")
        elif command.startswith(".venv/bin/python benchmarks/"):
            assert re.search(r"\d", output), output[-2000:]
            self.done.add("benchmark")

    def check_new_biomarker_trained(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{self.checkout / 'data' / 'demo' / '.platform' / 'mlflow.db'}")
        version = max(client.search_model_versions("name = 'demo-hospitalization_risk'"), key=lambda v: int(v.version))
        run = client.get_run(version.run_id)
        assert run.data.params["feature_service"] == "endpoint_v2"
        lineage = json.loads(Path(client.download_artifacts(run.info.run_id, "lineage.json",
                                                            str(self.tmp_path))).read_text())
        assert "non_movement_1d_min" in json.dumps(lineage), "the new biomarker is not among the run's features"
        table = self.checkout / "data" / "demo" / ".platform" / "feature_tables" / "daily_activity.parquet"
        import pandas as pd

        values = pd.read_parquet(table, columns=["non_movement_1d_min"])["non_movement_1d_min"]
        assert values.notna().any() and (values.dropna() >= 0).all()
        self.done.add("new_biomarker")

    def check_an_event_becomes_an_alert(self) -> None:
        """The README's example event, produced to the topic: an alert in the study's store and on the alerts topic."""
        from confluent_kafka.admin import AdminClient

        from serving.alerts import AlertStore
        from tests.kafka_broker import produce, read_topic

        event = json.loads(re.search(r"```json\n(.*?)```", README.read_text(), re.S).group(1))
        produce("127.0.0.1:9092", "demo.vital-signs", [(event["subject_id"].encode(), json.dumps(event).encode())])
        store = AlertStore(f"sqlite:///{self.checkout / 'data' / 'demo' / '.platform' / 'alerts.db'}", "demo")
        try:
            deadline = time.monotonic() + 90
            while not (alerts := [alert for alert in store.list(subject_id=event["subject_id"])
                                  if alert.source == "stream"]):
                assert time.monotonic() < deadline, "no alert from the stream in 90 s"
                time.sleep(0.5)
        finally:
            store.close()
        assert alerts[0].news2 >= 7, alerts
        # The consumer creates the alerts topic by writing to it; a reader subscribed before that
        # would not see it for minutes (librdkafka's metadata refresh), so wait for the topic first.
        admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
        while "demo.vital-signs.alerts" not in admin.list_topics(timeout=10).topics:
            assert time.monotonic() < deadline, "the consumer wrote no alerts topic in 90 s"
            time.sleep(0.5)
        messages = read_topic("127.0.0.1:9092", "demo.vital-signs.alerts", expected=1, timeout_s=60)
        assert event["subject_id"] in {json.loads(message.value())["subject_id"] for message in messages}
        self.done.add("stream_alert")


def add_the_readme_biomarker(checkout: Path) -> None:
    """Steps 1 to 4 of "Adding a biomarker, end to end", done to the copy as the README says."""
    text = README.read_text()
    function = textwrap.dedent(re.search(r"```python\n(\s*def non_movement_minutes_min.*?)\s*```", text, re.S).group(1))
    row_entry = re.search(r'`("non_movement_1d_min": float\(non_movement_minutes_min\(worn_steps\)\))`', text).group(1)
    edit(checkout / "features" / "biomarkers" / "activity.py", [
        ('    "wear_time_1d_min",\n    "missing_reason",\n)\nACCEL_ACTIVITY',
         '    "wear_time_1d_min",\n    "non_movement_1d_min",\n    "missing_reason",\n)\nACCEL_ACTIVITY'),
        ('            "wear_time_1d_min": float(wear_min),\n',
         '            "wear_time_1d_min": float(wear_min),\n            "non_movement_1d_min": math.nan,\n'),
        ('                "peak_cadence_30min_1d_steps_per_min": peak_cadence_steps_per_min(worn_steps, 30),\n',
         '                "peak_cadence_30min_1d_steps_per_min": peak_cadence_steps_per_min(worn_steps, 30),\n'
         f'                {row_entry},\n'),
    ], append="\n\n" + function)
    edit(checkout / "features" / "tables.py", [(
        '            "heart_rate_mean_1d_bpm": "mean heart rate over worn minutes, bpm; " + _MINUTE,\n',
        '            "heart_rate_mean_1d_bpm": "mean heart rate over worn minutes, bpm; " + _MINUTE,\n'
        '            "non_movement_1d_min": "worn minutes without a step, min; " + _MINUTE\n'
        '            + "; 0 steps/min cadence band (Tudor-Locke et al. 2011)",\n')])
    service = re.search(r'(        FeatureService\(\n            name="endpoint_v1",.*?\n        \),\n)',
                        (checkout / "features" / "definitions.py").read_text(), re.S).group(1)
    new_field = '                daily_activity[["non_movement_1d_min"]],\n'
    version_2 = (service.replace('"endpoint_v1"', '"endpoint_v2"')
                 .replace("            ],\n", new_field + "            ],\n", 1)
                 .replace('"version": "1"', '"version": "2"').replace("Version 1", "Version 2"))
    edit(checkout / "features" / "definitions.py", [(service, service + version_2)])
    edit(checkout / "studies" / "demo" / "study.yaml", [
        ("    feature_service: endpoint_v1\n", "    feature_service: endpoint_v2\n")])
    (checkout / "tests" / "features" / "test_activity.py").open("a").write(
        "\n\ndef test_non_movement_minutes_are_the_worn_minutes_without_a_step():\n"
        "    assert activity.non_movement_minutes_min(np.array([0.0, 12.0, 0.0, 101.0])) == 2\n")


def edit(path: Path, replacements: list[tuple[str, str]], append: str = "") -> None:
    text = path.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, f"{path.name}: the README's recipe no longer fits the code at {old[:60]!r}"
        text = text.replace(old, new)
    path.write_text(text + append)
