"""Point-in-time retrieval and materialization through Feast: our offline store against Feast's DuckDB and file stores.

Generates the eight feature tables of ``features.tables.TABLES`` with realistic shapes (default
2,000 subjects x 50 days of daily rows; labs weekly; hourly vital signs for 10 % of the subjects;
random floats, a few rows with a missing reason; ``event_timestamp`` and ``created_timestamp``
tz-aware UTC in microseconds) into a temporary folder, builds three temporary Feast repos from
``features.definitions.build_definitions(tables_dir)`` (the project's offline store,
``adapters.offline_store.AsofDuckDBOfflineStore``; Feast's own ``duckdb`` store, for reference;
Feast's default ``file`` store, the target's baseline), applies them, then times
``get_historical_features(...).to_df()`` of random entity rows (random subjects, random times in
the tables' span) on each store, alternately, each run in a fresh child process after a small
warm-up query:

* through the feature service ``endpoint_v1`` (four views and the on-demand view);
* all features of all eight views.

The file store is timed on fewer rows (``--file-rows``, default 10,000) when it is too slow for
the full count; its figure at the full count is then an extrapolation at its measured rows/s,
labelled as such, and our store is also timed on that smaller count for a like-for-like ratio.

Then times ``store.materialize(start, end)`` of every view into the SQLite online store (from
each offline store), and into Redis at 127.0.0.1:6379, alternately, Feast's ``materialize``
against our bulk loader (``adapters.redis_loader``, what ``biomarkers materialize`` uses on
Redis), when the ``redis`` package is importable and the server answers (otherwise says why
it was skipped). The target, 100,000 online rows/s into Redis, is for ours.

Targets: ours >= 100,000 entity rows/s across all views and >= 5x the file store.

Usage: .venv/bin/python benchmarks/retrieval.py [--subjects 2000] [--days 50] [--rows 100000]
                                                 [--file-rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchmarks.child import in_child  # noqa: E402  (needs the path above)

START = "2024-03-04T00:00:00Z"
OURS = "adapters.offline_store.AsofDuckDBOfflineStore"
REDIS = ("127.0.0.1", 6379)


def build_tables(tables_dir: Path, subjects: int, days: int, vitals_share: float, seed: int = 5) -> dict[str, int]:
    """Write one Parquet file per feature table; return the rows of each."""
    import numpy as np
    import pandas as pd

    from features.tables import TABLES

    rng = np.random.default_rng(seed)
    start = pd.Timestamp(START)
    created = pd.Timestamp("2024-06-01T00:00:00Z")
    ids = np.array([f"S{k:05d}" for k in range(subjects)], dtype=object)
    rows = {}
    for table in TABLES:
        if table.name == "hourly_vitals":
            who, steps = ids[: max(1, int(subjects * vitals_share))], pd.timedelta_range(
                pd.Timedelta(hours=1), periods=days * 24, freq="h")
        elif table.name == "labs":
            who, steps = ids, pd.timedelta_range(pd.Timedelta(days=1), periods=max(1, days // 7), freq="7D")
        else:
            who, steps = ids, pd.timedelta_range(pd.Timedelta(days=1), periods=days, freq="D")
        n = len(who) * len(steps)
        stamps = (start + pd.TimedeltaIndex(np.tile(steps, len(who)))).astype("datetime64[us, UTC]")
        frame = pd.DataFrame({"subject_id": np.repeat(who, len(steps)), "event_timestamp": stamps,
                              "created_timestamp": pd.DatetimeIndex([created] * n).astype("datetime64[us, UTC]")})
        values = rng.normal(50.0, 15.0, (n, len(table.columns)))
        missing = rng.random(n) < 0.03
        values[missing] = np.nan
        for k, column in enumerate(table.columns):
            frame[column] = values[:, k]
        frame[f"{table.name}_missing_reason"] = np.where(missing, "wear time 410 min < 600 min", None)
        frame.to_parquet(tables_dir / f"{table.name}.parquet", index=False)
        rows[table.name] = n
    return rows


def write_repo(repo: Path, offline: str, online: str) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(f"""
project: bench_{repo.name}
provider: local
registry: {repo / 'registry.db'}
offline_store: {{type: {offline}}}
online_store: {online}
entity_key_serialization_version: 3
""")
    return repo


def apply(repo: Path, tables_dir: Path) -> None:
    from feast import FeatureStore

    from features.definitions import build_definitions

    FeatureStore(repo_path=str(repo)).apply(list(build_definitions(tables_dir).values()))


def entity_rows(n: int, subjects: int, days: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    offsets = pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s")
    return pd.DataFrame({
        "subject_id": np.array([f"S{k:05d}" for k in rng.integers(0, subjects, n)], dtype=object),
        "event_timestamp": (pd.Timestamp(START) + offsets).astype("datetime64[us, UTC]"),
    })


def table_views(store) -> list:
    """The views of the generated tables: not the live vital signs, whose log only pushes write."""
    from features.tables import TABLES_BY_NAME

    return [view for view in store.list_feature_views() if view.name in TABLES_BY_NAME]


def measure_retrieval(repo: str, n: int, subjects: int, days: int, queue) -> None:
    """In a fresh process: warm up on 1,000 rows, then time both queries on ``n`` entity rows."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    service = store.get_feature_service("endpoint_v1")
    everything = [f"{view.name}:{field.name}" for view in table_views(store) for field in view.features]
    warm = entity_rows(1000, subjects, days, seed=1)
    store.get_historical_features(entity_df=warm, features=service).to_df()
    entities = entity_rows(n, subjects, days, seed=2)
    timings, shapes = {}, {}
    for name, features in (("endpoint_v1", service), ("all_views", everything)):
        started = time.perf_counter()
        frame = store.get_historical_features(entity_df=entities, features=features).to_df()
        timings[name] = time.perf_counter() - started
        shapes[name] = (len(frame), frame.shape[1])  # the file store may return fewer rows than asked
    queue.put({"s": timings, "shape": shapes})


def teardown(repo: str, queue) -> None:
    """Remove the benchmark project's online data (its keys in the shared Redis server)."""
    from feast import FeatureStore

    FeatureStore(repo_path=repo).teardown()
    queue.put({})


def measure_materialize(repo: str, loader: str, queue) -> None:
    """In a fresh process: materialize every view over the tables' whole span; count the online rows.

    ``loader``: ``"feast"`` for ``store.materialize``, ``"ours"`` for the bulk Redis loader
    (``adapters.redis_loader.load_latest``, what ``biomarkers materialize`` uses on Redis).
    """
    import pandas as pd
    from feast import FeatureStore

    from adapters.feast_repo import clear_online_view

    store = FeatureStore(repo_path=repo)
    for view in table_views(store):  # an empty online store: no row is skipped as already stored
        clear_online_view(store, view)
    start = (pd.Timestamp(START) - pd.Timedelta(days=1)).to_pydatetime()
    end = pd.Timestamp("2024-06-01T00:00:00Z").to_pydatetime()
    started = time.perf_counter()
    if loader == "ours":
        from adapters.redis_loader import load_latest

        for view in table_views(store):  # a full load into emptied views, as materialize does
            load_latest(store, view, start, end, emptied=True)
    else:
        store.materialize(start_date=start, end_date=end, feature_views=[view.name for view in table_views(store)])
    elapsed = time.perf_counter() - started
    written = 0
    for view in table_views(store):  # what materialize loads: the latest row per subject
        keys = pd.read_parquet(view.batch_source.path, columns=["subject_id"])["subject_id"]
        written += keys.nunique()
    queue.put({"s": elapsed, "online_rows": written})


def redis_reason() -> str | None:
    """Why Redis cannot be used here, or None when it can."""
    try:
        import redis
    except ImportError as error:
        return f"the redis Python package is not importable ({error})"
    try:
        redis.Redis(host=REDIS[0], port=REDIS[1], socket_connect_timeout=1).ping()
    except Exception as error:  # noqa: BLE001 - any failure to answer means skip
        return f"no Redis server answered at {REDIS[0]}:{REDIS[1]} ({error})"
    return None



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--vitals-share", type=float, default=0.1, help="share of subjects with hourly vitals")
    parser.add_argument("--rows", type=int, default=100_000, help="entity rows per retrieval")
    parser.add_argument("--file-rows", type=int, default=10_000,
                        help="entity rows for the file store (0: the same as --rows)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    args = parser.parse_args()
    file_rows = args.file_rows or args.rows

    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as folder:
        root = Path(folder)
        tables_dir = root / "tables"
        tables_dir.mkdir()
        started = time.perf_counter()
        table_rows = build_tables(tables_dir, args.subjects, args.days, args.vitals_share)
        print(f"feature tables: {sum(table_rows.values()):,} rows in {len(table_rows)} tables "
              f"({time.perf_counter() - started:.1f} s): {table_rows}")
        sqlite = "{{type: sqlite, path: {}}}"
        repos = {
            "ours": write_repo(root / "ours", OURS, sqlite.format(root / "ours" / "online.db")),
            "feast_duckdb": write_repo(root / "feast_duckdb", "duckdb",
                                       sqlite.format(root / "feast_duckdb" / "online.db")),
            "file": write_repo(root / "file", "file", sqlite.format(root / "file" / "online.db")),
        }
        for repo in repos.values():
            apply(repo, tables_dir)

        runs: dict[str, list[dict]] = {"ours": [], "feast_duckdb": [], "ours_small": [], "file": []}
        for attempt in range(args.repeat):
            for store in ("ours", "feast_duckdb"):
                runs[store].append(in_child(measure_retrieval, str(repos[store]), args.rows,
                                            args.subjects, args.days))
            if file_rows != args.rows:
                runs["ours_small"].append(in_child(measure_retrieval, str(repos["ours"]), file_rows,
                                                   args.subjects, args.days))
            runs["file"].append(in_child(measure_retrieval, str(repos["file"]), file_rows,
                                          args.subjects, args.days))
            print(f"  run {attempt + 1}: " + "; ".join(
                f"{store} ({file_rows if store in ('file', 'ours_small') else args.rows:,} rows) "
                + ", ".join(f"{q} {s:.2f} s" for q, s in r[-1]["s"].items())
                for store, r in runs.items() if r))

        def median_s(store: str, query: str) -> float:
            return statistics.median(r["s"][query] for r in runs[store])

        retrieval = {}
        for query in ("endpoint_v1", "all_views"):
            ours = args.rows / median_s("ours", query)
            feast_duckdb = args.rows / median_s("feast_duckdb", query)
            file = file_rows / median_s("file", query)
            entry = {
                "columns": runs["ours"][0]["shape"][query][1],
                "ours_rows_returned": runs["ours"][0]["shape"][query][0],
                "feast_duckdb_rows_returned": runs["feast_duckdb"][0]["shape"][query][0],
                "file_rows_returned": runs["file"][0]["shape"][query][0],
                "ours_rows": args.rows,
                "ours_s_median": round(median_s("ours", query), 3),
                "ours_rows_per_s": round(ours),
                "feast_duckdb_s_median": round(median_s("feast_duckdb", query), 3),
                "feast_duckdb_rows_per_s": round(feast_duckdb),
                "ours_over_feast_duckdb_ratio": round(ours / feast_duckdb, 2),
                "file_rows": file_rows,
                "file_s_median": round(median_s("file", query), 3),
                "file_rows_per_s": round(file),
                "ours_over_file_ratio": round(ours / file, 2),
            }
            if file_rows != args.rows:
                small = file_rows / median_s("ours_small", query)
                entry.update({
                    "ours_s_median_at_file_rows": round(median_s("ours_small", query), 3),
                    "ours_rows_per_s_at_file_rows": round(small),
                    "ours_over_file_ratio_same_rows": round(small / file, 2),
                    "file_s_at_full_rows_EXTRAPOLATED": round(args.rows / file, 1),
                })
            retrieval[query] = entry

        print("materialization: all views into SQLite (Feast's materialize), then into Redis (Feast's, ours)")
        materialization = {}
        for name, repo in repos.items():
            results = [in_child(measure_materialize, str(repo), "feast") for _ in range(args.repeat)]
            elapsed = statistics.median(r["s"] for r in results)
            materialization[f"sqlite_from_{name}"] = {
                "online_rows": results[0]["online_rows"], "s_median": round(elapsed, 3),
                "online_rows_per_s": round(results[0]["online_rows"] / elapsed)}
            print(f"  sqlite from {name}: " + ", ".join(f"{r['s']:.2f} s" for r in results))
        skipped = redis_reason()
        if skipped is None:
            repo = write_repo(root / "redis", OURS,
                              f"{{type: redis, connection_string: '{REDIS[0]}:{REDIS[1]}'}}")
            apply(repo, tables_dir)
            results = {"feast": [], "ours": []}
            for _ in range(args.repeat):  # alternated
                for loader, runs_of_loader in results.items():
                    runs_of_loader.append(in_child(measure_materialize, str(repo), loader))
            in_child(teardown, str(repo))  # leave the shared Redis as it was found
            for loader, runs_of_loader in results.items():
                elapsed = statistics.median(r["s"] for r in runs_of_loader)
                materialization[f"redis_{loader}"] = {
                    "online_rows": runs_of_loader[0]["online_rows"], "s_median": round(elapsed, 3),
                    "online_rows_per_s": round(runs_of_loader[0]["online_rows"] / elapsed)}
                print(f"  redis, {loader}: " + ", ".join(f"{r['s']:.2f} s" for r in runs_of_loader))
            materialization["redis_ours_over_feast_ratio"] = round(
                materialization["redis_feast"]["s_median"] / materialization["redis_ours"]["s_median"], 2)
        else:
            materialization["redis_feast"] = materialization["redis_ours"] = {"skipped": skipped}

    figures = {
        "subjects": args.subjects,
        "days": args.days,
        "table_rows": table_rows,
        "retrieval": retrieval,
        "materialization": materialization,
        "materialization_note": "materialize loads the latest row per subject and view in [start, end]: "
                                "online_rows = sum over views of the subjects in the table",
    }
    print(json.dumps(figures, indent=2))
    for query, entry in retrieval.items():
        print(f"{query}: ours {entry['ours_rows_per_s']:,} rows/s at {args.rows:,} rows (target >= 100,000); "
              f"Feast's DuckDB {entry['feast_duckdb_rows_per_s']:,} rows/s "
              f"(ours {entry['ours_over_feast_duckdb_ratio']:.1f}x); "
              f"file store {entry['file_rows_per_s']:,} rows/s at {file_rows:,} rows; "
              f"ratio {entry['ours_over_file_ratio']:.1f}x (target >= 5x)"
              + (f", {entry['ours_over_file_ratio_same_rows']:.1f}x at the same {file_rows:,} rows; file store at "
                 f"{args.rows:,} rows EXTRAPOLATED {entry['file_s_at_full_rows_EXTRAPOLATED']:.0f} s"
                 if file_rows != args.rows else ""))
    for name, entry in materialization.items():
        if not isinstance(entry, dict):
            print(f"materialize {name}: {entry}")
        elif "skipped" in entry:
            print(f"materialize {name}: skipped: {entry['skipped']}")
        else:
            print(f"materialize {name}: {entry['online_rows_per_s']:,} online rows/s "
                  f"({entry['online_rows']:,} rows in {entry['s_median']:.2f} s)")


if __name__ == "__main__":
    main()
