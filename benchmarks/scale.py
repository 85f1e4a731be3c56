"""Biomarker build throughput: the local engine (process pool) against Spark ``local[N]``, 1 and 2 cores.

Generates the demo study (``pipelines.demo.generate.generate_demo``: minute wearable data, wrist
and lower-back accelerometry, ECG, vitals and labs; default 8 subjects x 7 days), ingests it, and
then builds every feature table of it (``pipelines.build.local.build_features``, ``force=True``,
into a folder of its own each time) with:

* the local engine, ``workers=1`` (in the process) and ``workers=2`` (a spawn process pool);
* the Spark engine on ``local[1]`` and ``local[2]`` (one session each, started before the clock:
  its JVM start and a warm-up job that imports the project in Spark's Python worker are printed
  apart, since a cluster pays them once per application, not once per build).

Rounds alternate between the four set-ups (``--repeat`` rounds); each figure is the median wall
time of its rounds. Printed per set-up: seconds, subjects per second and subject-days per
second; per engine, the speed-up from 1 to 2 cores; per core count, Spark over local. Every build
must publish the same tables with the same row counts, checked before the figures are printed.

Usage: .venv/bin/python benchmarks/scale.py [--subjects 8] [--days 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

STUDY = REPOSITORY / "studies" / "demo" / "study.yaml"
SETUPS = (("local", 1), ("local", 2), ("spark", 1), ("spark", 2))


def spark_for(cores: int):
    """A fresh Spark session on ``local[cores]``, warmed up: (session, start seconds, warm-up seconds)."""
    from adapters.spark import spark_session
    from pipelines.config import SparkConfig

    started = time.perf_counter()
    session = spark_session(SparkConfig(master=f"local[{cores}]", conf={"spark.ui.enabled": False}))
    start_s = time.perf_counter() - started
    started = time.perf_counter()
    # One task per core importing what a build task imports: the Python workers are then warm.
    session.sparkContext.parallelize(range(cores), cores).map(_import_project).collect()
    return session, start_s, time.perf_counter() - started


def _import_project(_: int) -> int:
    import features.compute  # noqa: F401
    import pipelines.build.local  # noqa: F401

    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        from adapters.spark import require_pyspark

        require_pyspark()
    except ImportError as error:
        print(f"skipped: {error}")
        return

    from pipelines.build.local import build_features
    from pipelines.config import load_study
    from pipelines.demo.generate import generate_demo
    from pipelines.ingest.run import ingest_study

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        generate_demo(root / "study", seed=11, n_subjects=args.subjects, days=args.days)
        config = load_study(STUDY, root / "study")
        ingest_study(config, workers=2)
        print(f"demo study: {args.subjects} subjects x {args.days} days, generated and ingested in "
              f"{time.perf_counter() - started:.0f} s; {os.cpu_count()} cores; Python {sys.version.split()[0]}")

        sessions = {}
        times: dict[tuple[str, int], list[float]] = {setup: [] for setup in SETUPS}
        tables: dict[tuple[str, int], dict[str, int]] = {}
        for attempt in range(args.repeat):
            for engine, cores in SETUPS:
                session = None
                if engine == "spark":
                    # One session at a time (a JVM holds one SparkContext): restart on a change of cores.
                    if cores not in sessions:
                        for other in sessions.values():
                            other[0].stop()
                        sessions.clear()
                        sessions[cores] = spark_for(cores)
                        _, start_s, warm_s = sessions[cores]
                        print(f"  spark local[{cores}]: session started in {start_s:.1f} s, workers warmed in "
                              f"{warm_s:.1f} s (not timed)")
                    session = sessions[cores][0]
                out = root / f"tables-{engine}-{cores}-{attempt}"
                started = time.perf_counter()
                summary = build_features(config, out, engine=engine, workers=cores, spark=session, force=True)
                times[(engine, cores)].append(time.perf_counter() - started)
                tables[(engine, cores)] = summary.tables
                print(f"  round {attempt + 1}, {engine} on {cores} core(s): {times[(engine, cores)][-1]:.1f} s")
        for session, _, _ in sessions.values():
            session.stop()

    reference = tables[SETUPS[0]]
    for setup, published in tables.items():
        if published != reference:
            raise SystemExit(f"{setup} published other tables than {SETUPS[0]}: {published} != {reference}")
    figures = {}
    for engine, cores in SETUPS:
        seconds = statistics.median(times[(engine, cores)])
        figures[f"{engine}_{cores}_cores"] = {
            "seconds": round(seconds, 2), "subjects_per_s": round(args.subjects / seconds, 3),
            "subject_days_per_s": round(args.subjects * args.days / seconds, 2),
            "rounds_s": [round(value, 2) for value in times[(engine, cores)]]}
    for engine in ("local", "spark"):
        figures[f"{engine}_speedup_1_to_2_cores"] = round(
            figures[f"{engine}_1_cores"]["seconds"] / figures[f"{engine}_2_cores"]["seconds"], 2)
    for cores in (1, 2):
        figures[f"spark_over_local_throughput_{cores}_cores"] = round(
            figures[f"local_{cores}_cores"]["seconds"] / figures[f"spark_{cores}_cores"]["seconds"], 2)
    figures["rows_per_table"] = reference
    print(json.dumps(figures, indent=2))
    for engine, cores in SETUPS:
        entry = figures[f"{engine}_{cores}_cores"]
        print(f"{engine} on {cores} core(s): median {entry['seconds']:.1f} s, "
              f"{entry['subjects_per_s']:.2f} subjects/s, {entry['subject_days_per_s']:.1f} subject-days/s")
    print(f"speed-up 1 -> 2 cores: local {figures['local_speedup_1_to_2_cores']:.2f}x, "
          f"spark {figures['spark_speedup_1_to_2_cores']:.2f}x; spark / local throughput: "
          f"{figures['spark_over_local_throughput_1_cores']:.2f} on 1 core, "
          f"{figures['spark_over_local_throughput_2_cores']:.2f} on 2 cores")


if __name__ == "__main__":
    main()
