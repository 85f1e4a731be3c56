"""Online latency: our ``/v1/score`` (features plus model) against ``feast serve`` (features only), on Redis.

Generates the eight feature tables of ``features.tables.TABLES`` (``benchmarks.retrieval.build_tables``,
default 2,000 subjects x 10 days), applies ``features.definitions.build_definitions(tables_dir)``
to a temporary Feast repo whose online store is the Redis server at 127.0.0.1:6379 (a Feast
project of its own per run, torn down at the end), materializes every view
(``adapters.feast_repo.materialize``: the bulk Redis loader) and registers a small scikit-learn
pipeline (SimpleImputer, StandardScaler, HistGradientBoostingClassifier, fitted on random values)
trained on the features of the feature service ``endpoint_v1`` in the order Feast returns them,
with its ``lineage.json``, in an MLflow registry on SQLite in the same temporary folder.

Then starts, on free loopback ports, each in a process of its own and with one worker each:

* ours: ``uvicorn.run(serving.app.create_app(settings))``, ``POST /v1/score/risk`` with
  ``{"subject_ids": [...]}`` and an API key: reads ``endpoint_v1`` online, scores with the model;
* Feast's: ``feast serve`` (gunicorn with one uvicorn worker, no access log, no worker recycling,
  no metrics server), ``POST /get-online-features`` with ``{"feature_service": "endpoint_v1",
  "entities": {"subject_id": [...]}}``: reads the same features, no model.

Both must answer 200 with values (and ours with scores) before the clock starts. A client of
``--concurrency`` threads (default 4), each with its own keep-alive ``httpx.Client`` per server,
sends pre-encoded request bodies of random materialized subjects; each request is timed with
``time.perf_counter`` from send to the full response read. After a warm-up of each server, rounds
alternate between the servers (ours, Feast's, ours, Feast's, ...) for each case: 1 subject per
request (``--requests`` a round), then 100 subjects per request (``--batch-requests`` a round).
Per case it prints the p50 and p99 latency (ms, over all rounds) and throughput (requests/s) of
each server, and the ratios ours / Feast's. Client and servers share the machine's cores (the
client's CPU time counts in both servers' latencies alike).

Targets: our p99 / Feast's p99 <= 1.0 in both cases; single-subject score p99 <= 10 ms on loopback.

Usage: .venv/bin/python benchmarks/online.py [--subjects 2000] [--days 10] [--concurrency 4]
                                              [--requests 200] [--batch-requests 50] [--rounds 2]
                                              [--warmup 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchmarks.child import in_child  # noqa: E402  (needs the path above)
from benchmarks.retrieval import (  # noqa: E402
    OURS,
    REDIS,
    START,
    apply,
    build_tables,
    redis_reason,
    teardown,
    write_repo,
)

SERVICE = "endpoint_v1"
MODEL = "risk"
REGISTERED = "bench-risk"
KEY = "benchmark-key"
STUDY = "bench"
CASES = (1, 100)


def prepare(repo: str, tables_dir: str, root: str, end: str, queue) -> None:
    """In a fresh process: apply and materialize the repo, register the model; put the features' order."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import skops.io
    from feast import FeatureStore
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from adapters.feast_repo import materialize
    from adapters.tracking import Lineage, log_lineage

    apply(Path(repo), Path(tables_dir))
    started = time.perf_counter()
    loaded = materialize(Path(repo), end=pd.Timestamp(end).to_pydatetime())
    materialize_s = time.perf_counter() - started
    service = FeatureStore(repo_path=repo).get_feature_service(SERVICE)
    views = [projection.name_to_use() for projection in service.feature_view_projections]
    features = [feature.name for projection in service.feature_view_projections for feature in projection.features]

    rng = np.random.default_rng(11)
    x = pd.DataFrame(rng.normal(50.0, 15.0, (2000, len(features))), columns=features)
    x[x > 80] = np.nan  # the pipeline imputes, as online values may be missing
    y = (x.iloc[:, 0].fillna(50) + rng.normal(0, 10, len(x)) > 55).astype(int)
    pipe = make_pipeline(SimpleImputer(), StandardScaler(),
                         HistGradientBoostingClassifier(max_iter=100, random_state=0)).fit(x, y)
    tracking_uri = f"sqlite:///{Path(root) / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bench-online", artifact_location=(Path(root) / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipe, name="model", serialization_format="skops", pip_requirements=["scikit-learn"],
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipe)))
        log_lineage(Lineage.of_external_model("bench", "endpoint", SERVICE, views, features))
    version = mlflow.register_model(info.model_uri, REGISTERED)
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED, "champion", version.version)
    queue.put({"tracking_uri": tracking_uri, "features": features, "materialize_s": materialize_s,
               "materialized": loaded})


def serve_ours(settings: dict, port: int) -> None:
    """Run our API with one uvicorn worker (in a process of its own: see ``start_ours``)."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import ServingSettings

    # Keep-alive as long as feast serve's (30 s): idle connections survive the other server's round.
    uvicorn.run(create_app(ServingSettings.model_validate(settings)), host="127.0.0.1", port=port,
                log_level="warning", access_log=False, timeout_keep_alive=30)


def start_ours(settings: dict, port: int, log: Path) -> subprocess.Popen:
    """Start ``serve_ours`` in a new Python process; its output goes to ``log``."""
    code = (f"import json, sys; sys.path.insert(0, {str(REPOSITORY)!r}); from benchmarks.online import serve_ours; "
            f"serve_ours(json.loads(sys.argv[1]), {port})")
    with log.open("wb") as output:
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(settings)], start_new_session=True,
                                stdout=output, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    """Stop a server process and its children (the session it leads)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process, what: str, timeout_s: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail naming ``what`` if the process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited before it was ready")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready at {url} after {timeout_s:.0f} s")


def check_answers(ours: str, feast: str, subjects: list[str], n_features: int) -> None:
    """Both servers answer 200 with values for known subjects (ours with a score each) before timing."""
    import httpx

    asked = subjects[:3]
    response = httpx.post(f"{ours}/v1/score/{MODEL}", json={"subject_ids": asked},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=30.0)
    body = response.json()
    if response.status_code != 200 or [row["subject_id"] for row in body["scores"]] != asked \
            or any(row["score"] is None for row in body["scores"]):
        raise RuntimeError(f"our /v1/score answered {response.status_code}: {response.text[:500]}")
    response = httpx.post(f"{feast}/get-online-features",
                          json={"feature_service": SERVICE, "entities": {"subject_id": asked}}, timeout=30.0)
    body = response.json()
    names = body.get("metadata", {}).get("feature_names", []) if response.status_code == 200 else []
    values = [value for result in body.get("results", [])[1:] for value in result["values"]] if names else []
    if len(names) != n_features + 1 or not any(value is not None for value in values):
        raise RuntimeError(f"feast's /get-online-features answered {response.status_code}: {response.text[:500]}")


def bodies(subjects: list[str], per_request: int, n: int, seed: int, server: str) -> list[bytes]:
    """``n`` pre-encoded request bodies of ``per_request`` random subjects each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        chosen = [subjects[k] for k in rng.integers(0, len(subjects), per_request)]
        payload = {"subject_ids": chosen} if server == "ours" else \
            {"feature_service": SERVICE, "entities": {"subject_id": chosen}}
        out.append(json.dumps(payload).encode())
    return out


def run_round(clients: list, path: str, payloads: list[bytes]) -> tuple[list[float], float, int]:
    """Send every payload over the clients (one thread each); (latencies in ms, wall seconds, failures)."""
    latencies = [0.0] * len(payloads)
    failures = [0]
    next_index = iter(range(len(payloads)))
    lock = threading.Lock()

    def worker(client) -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            started = time.perf_counter()
            response = client.post(path, content=payloads[index])
            response.read()
            latencies[index] = (time.perf_counter() - started) * 1000.0
            if response.status_code != 200:
                with lock:
                    failures[0] += 1

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, failures[0]


def summary(latencies: list[float], wall_s: float, requests: int, failures: int) -> dict:
    import numpy as np

    values = np.asarray(latencies)
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2),
            "mean_ms": round(float(values.mean()), 2), "max_ms": round(float(values.max()), 2),
            "requests_per_s": round(requests / wall_s, 1), "requests": requests, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--vitals-share", type=float, default=0.1, help="share of subjects with hourly vitals")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads, one keep-alive connection each")
    parser.add_argument("--requests", type=int, default=200, help="requests per round, 1 subject per request")
    parser.add_argument("--batch-requests", type=int, default=50,
                        help="requests per round, 100 subjects per request")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per server and case, alternated")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests per server and case first")
    args = parser.parse_args()
    skipped = redis_reason()
    if skipped is not None:
        print(f"skipped: {skipped}")
        return

    import httpx

    started_all = time.perf_counter()
    processes: dict[str, subprocess.Popen] = {}
    repo = None
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-online-") as folder:
        root = Path(folder)
        tables_dir = root / "tables"
        tables_dir.mkdir()
        try:
            table_rows = build_tables(tables_dir, args.subjects, args.days, args.vitals_share)
            # The Feast project (bench_<folder name>) is unique per run: its keys in the shared Redis are ours alone.
            repo = write_repo(root / f"online_{os.getpid()}_{int(time.time())}", OURS,
                              f"{{type: redis, connection_string: '{REDIS[0]}:{REDIS[1]}'}}")
            import pandas as pd

            end = (pd.Timestamp(START) + pd.Timedelta(days=args.days + 2)).isoformat()
            prepared = in_child(prepare, str(repo), str(tables_dir), str(root), end)
            print(f"feature tables: {sum(table_rows.values()):,} rows; materialized into Redis in "
                  f"{prepared['materialize_s']:.1f} s; model inputs: {len(prepared['features'])} features of {SERVICE}")

            from serving.settings import ApiKey, hash_api_key

            settings = {"study_id": STUDY, "feast_repo_path": str(repo), "tracking_uri": prepared["tracking_uri"],
                        "models": {MODEL: f"{REGISTERED}@champion"},
                        "api_keys": [ApiKey(name="benchmark", sha256=hash_api_key(KEY), studies=(STUDY,)).model_dump()],
                        "max_body_bytes": 1024 * 1024}
            ports = {"ours": free_port(), "feast": free_port()}
            logs = {"ours": root / "ours.log", "feast": root / "feast_serve.log"}  # files, not pipes nobody drains
            processes["ours"] = start_ours(settings, ports["ours"], logs["ours"])
            # One gunicorn worker like our one uvicorn worker; no recycling after 1,000 requests, no access log.
            with logs["feast"].open("wb") as output:
                processes["feast"] = subprocess.Popen(
                    [str(Path(sys.executable).parent / "feast"), "-c", str(repo), "serve", "-h", "127.0.0.1",
                     "-p", str(ports["feast"]), "--no-access-log", "-w", "1", "--max-requests", "0",
                     "--max-requests-jitter", "0", "--keep-alive-timeout", "30"],
                    cwd=str(repo), start_new_session=True, stdout=output, stderr=subprocess.STDOUT)
            base = {server: f"http://127.0.0.1:{port}" for server, port in ports.items()}
            checks = [("ours", "/healthz", "our server"), ("ours", "/readyz", "our server (model and store)"),
                      ("feast", "/health", "feast serve")]
            for server, path, what in checks:
                try:
                    wait_ready(base[server] + path, processes[server], what)
                except RuntimeError:
                    print(logs[server].read_text()[-3000:])
                    raise
            subjects = sorted({f"S{k:05d}" for k in range(args.subjects)})
            check_answers(base["ours"], base["feast"], subjects, len(prepared["features"]))

            paths = {"ours": f"/v1/score/{MODEL}", "feast": "/get-online-features"}
            headers = {"ours": {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                       "feast": {"Content-Type": "application/json"}}
            clients = {server: [httpx.Client(base_url=base[server], headers=headers[server], timeout=60.0)
                                for _ in range(args.concurrency)] for server in base}
            print(f"environment: {os.cpu_count()} cores, concurrency {args.concurrency}, {args.subjects:,} subjects "
                  f"x {args.days} days, {args.rounds} rounds per server and case of "
                  f"{args.requests} requests (1 subject) and {args.batch_requests} requests (100 subjects), "
                  f"warm-up {args.warmup}; Python {sys.version.split()[0]}")
            results = {}
            for per_request in CASES:
                requests = args.requests if per_request == 1 else args.batch_requests
                for server in base:
                    run_round(clients[server], paths[server],
                              bodies(subjects, per_request, args.warmup, seed=per_request, server=server))
                timed = {server: {"latencies": [], "wall_s": 0.0, "failures": 0} for server in base}
                for attempt in range(args.rounds):
                    for server in base:  # alternated; both servers get the same subjects in the same round
                        payloads = bodies(subjects, per_request, requests, seed=1000 * per_request + attempt,
                                          server=server)
                        latencies, wall_s, failures = run_round(clients[server], paths[server], payloads)
                        timed[server]["latencies"] += latencies
                        timed[server]["wall_s"] += wall_s
                        timed[server]["failures"] += failures
                        print(f"  {per_request} subject(s), round {attempt + 1}, {server}: "
                              f"{summary(latencies, wall_s, len(latencies), failures)}")
                case = {server: summary(entry["latencies"], entry["wall_s"], len(entry["latencies"]),
                                        entry["failures"]) for server, entry in timed.items()}
                case["ours_over_feast_p50"] = round(case["ours"]["p50_ms"] / case["feast"]["p50_ms"], 2)
                case["ours_over_feast_p99"] = round(case["ours"]["p99_ms"] / case["feast"]["p99_ms"], 2)
                results[f"{per_request}_subject{'s' if per_request > 1 else ''}_per_request"] = case
            for server_clients in clients.values():
                for client in server_clients:
                    client.close()
            figures = {"cores": os.cpu_count(), "concurrency": args.concurrency, "subjects": args.subjects,
                       "days": args.days, "requests_per_round": {"1_subject": args.requests,
                                                                 "100_subjects": args.batch_requests},
                       "rounds": args.rounds,
                       "warmup": args.warmup, "model_features": len(prepared["features"]), "results": results}
        finally:
            for process in processes.values():  # feast serve: gunicorn's master and its worker
                stop(process)
            if repo is not None and (repo / "registry.db").is_file():
                in_child(teardown, str(repo))  # leave the shared Redis as it was found

    print(json.dumps(figures, indent=2))
    for name, case in figures["results"].items():
        ours, feast = case["ours"], case["feast"]
        print(f"{name.replace('_', ' ')}: ours p50 {ours['p50_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms, "
              f"{ours['requests_per_s']:,.0f} req/s; Feast p50 {feast['p50_ms']:.2f} ms, p99 {feast['p99_ms']:.2f} ms, "
              f"{feast['requests_per_s']:,.0f} req/s; ratio p50 {case['ours_over_feast_p50']:.2f}, "
              f"p99 {case['ours_over_feast_p99']:.2f} (target <= 1.0: "
              f"{'met' if case['ours_over_feast_p99'] <= 1.0 else 'NOT met'})")
    single = figures["results"]["1_subject_per_request"]["ours"]["p99_ms"]
    print(f"single-subject score p99 {single:.2f} ms (target <= 10 ms: {'met' if single <= 10.0 else 'NOT met'}); "
          f"total {time.perf_counter() - started_all:.0f} s")


if __name__ == "__main__":
    main()
