"""Throughput of the wrist activity biomarkers against SKDH's own pipeline, and the per-subject fan-out.

Builds a synthetic wrist recording (default 7 days at 50 Hz = 30.24 million tri-axial samples,
float32 in g, built hour by hour: gravity on one axis with posture changes, activity bursts and
walking in the day, near stillness at night) and, in one child process pinned to one core,
measures alternately:

(a) SKDH alone: the same steps with SKDH's own processes (``GetDayWindowIndices``, SKDH's
    ``AccelThresholdWearDetection``, then SKDH's ``ActivityLevelClassification`` restricted to the
    endpoints we report, ``ActivityLevelTimes``: the stock class would add some 90 endpoints and a
    fluctuation analysis of about 20 s per day), ``run(time=..., accel=..., fs=..., tz_name="UTC")``
    on the float64 arrays SKDH takes, prepared outside the timed region;
(b) ours: ``accel_activity_daily_features(frame, fs, subject_id)`` on the canonical frame
    (``timestamp`` datetime64[ns, UTC], float32 axes), timed including our frame -> array
    conversion and the table assembly; its wear detection is ``BlockWearDetection`` (SKDH's
    rules, window statistics per 15-min block); the same wear periods are checked here.

Then (c) the per-subject fan-out: several subjects' recordings (default 4 subjects x 1 day), each
written to Parquet first, are read and processed (the same ``accel_activity_daily_features``)
through a spawn ``ProcessPoolExecutor`` with 1 worker, then 2 workers; the pools are warmed up
(imports) before the clock starts, the cold wall time including the spawn is printed too.

Targets: ours / SKDH throughput >= 0.9; speed-up of 2 workers over 1 >= 1.7 (on 2 cores).

Usage: .venv/bin/python benchmarks/biomarkers.py [--days 7] [--rate 50] [--repeat 3]
                                                  [--subjects 4] [--subject-days 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchmarks.child import in_child  # noqa: E402  (needs the path above)

START_UNIX_S = 1_709_510_400  # 2024-03-04T00:00:00Z: the recording starts at a UTC midnight


def build_frame(days: int, rate_hz: int, seed: int = 11):
    """The canonical ACCELEROMETRY frame of a synthetic wrist recording, built one hour at a time."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    per_hour = 3600 * rate_hz
    n = days * 24 * per_hour
    axes = np.empty((3, n), dtype=np.float32)
    gravity = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    t_hour = np.arange(per_hour, dtype=np.float32) / np.float32(rate_hz)
    for hour in range(days * 24):
        block = axes[:, hour * per_hour:(hour + 1) * per_hour]
        day_time = 7 <= (hour % 24) < 22
        # posture: a new wrist orientation every few minutes by day, every hour or so at night
        changes = int(rng.integers(8, 20)) if day_time else int(rng.integers(0, 3))
        edges = np.sort(rng.integers(0, per_hour, changes))
        start = 0
        for edge in [*edges.tolist(), per_hour]:
            block[:, start:edge] = gravity[:, None]
            tilt = rng.normal(0, 0.5, 3).astype(np.float32) + np.array([0, 0, 1], dtype=np.float32)
            gravity = tilt / np.linalg.norm(tilt)
            start = edge
        block += rng.normal(0, 0.03 if day_time else 0.004, (3, per_hour)).astype(np.float32)
        if day_time:  # activity bursts: walking (about 1.8-2.2 Hz) and brisker movement
            for _ in range(int(rng.integers(2, 8))):
                length = int(rng.integers(30, 900)) * rate_hz
                at = int(rng.integers(0, per_hour - length))
                amplitude = np.float32(rng.uniform(0.1, 0.8))
                step_hz = np.float32(rng.uniform(1.6, 2.4))
                wave = amplitude * np.sin(np.float32(2 * np.pi) * step_hz * t_hour[:length])
                block[0, at:at + length] += wave
                block[1, at:at + length] += np.float32(0.5) * wave
    stamps = START_UNIX_S * 10**9 + np.arange(n, dtype=np.int64) * (10**9 // rate_hz)
    return pd.DataFrame({
        "timestamp": pd.DatetimeIndex(stamps.view("datetime64[ns]")).tz_localize("UTC"),
        "accel_x_g": axes[0], "accel_y_g": axes[1], "accel_z_g": axes[2],
    })


def measure_single(days: int, rate_hz: int, repeat: int, queue) -> None:
    """In a fresh process pinned to one core: SKDH alone and ours, alternately, ``repeat`` times each."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import numpy as np
    import skdh
    from skdh.preprocessing import AccelThresholdWearDetection, GetDayWindowIndices

    from features.biomarkers.activity import (
        ActivityLevelTimes,
        BlockWearDetection,
        accel_activity_daily_features,
        unix_time_s_and_accel_g,
    )

    def skdh_alone() -> skdh.Pipeline:
        pipeline = skdh.Pipeline()
        pipeline.add(GetDayWindowIndices(bases=0, periods=24))
        pipeline.add(AccelThresholdWearDetection())
        pipeline.add(ActivityLevelTimes(day_window=(0, 24)))
        return pipeline

    started = time.perf_counter()
    frame = build_frame(days, rate_hz)
    build_s = time.perf_counter() - started
    fs = float(rate_hz)
    # SKDH's inputs, prepared once, outside the timed region
    time_s, accel_g = unix_time_s_and_accel_g(frame, fs)
    # warm-up: imports, first-use costs (numba/lazy modules), on the first 12 h
    warm = frame.iloc[: 12 * 3600 * rate_hz]
    accel_activity_daily_features(warm, fs, "S0001")
    skdh_runs, our_runs, conversions = [], [], []
    result = None
    with np.errstate(divide="ignore"):
        same_wear = np.array_equal(AccelThresholdWearDetection().predict(time=time_s, accel=accel_g, fs=fs)["wear"],
                                   BlockWearDetection().predict(time=time_s, accel=accel_g, fs=fs)["wear"])
    for _ in range(repeat):
        pipeline = skdh_alone()
        t0 = time.perf_counter()
        with np.errstate(divide="ignore"):
            result = pipeline.run(time=time_s, accel=accel_g, fs=fs, tz_name="UTC")
        skdh_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = accel_activity_daily_features(frame, fs, "S0001")
        our_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        unix_time_s_and_accel_g(frame, fs)
        conversions.append(time.perf_counter() - t0)
    levels = result["ActivityLevelTimes"]
    queue.put({
        "samples": len(frame), "build_s": build_s, "skdh_s": skdh_runs, "ours_s": our_runs,
        "conversion_s": conversions,
        "rows": len(ours), "valid_days": int(ours["missing_reason"].isna().sum()),
        "mean_wear_min": float(ours["accel_wear_time_1d_min"].mean()),
        "mean_mvpa_min": float(ours["mvpa_1d_min"].mean()),
        "skdh_days": len(levels["Date"]),
        "same_wear_periods": same_wear,
        "same_daily_levels": bool(np.allclose(
            ours["mvpa_1d_min"].to_numpy(), np.asarray(levels["wake MVPA 5s epoch [min]"], dtype=float),
            equal_nan=True)),
    })


def _warm_up(_: int) -> int:
    """Pool warm-up: the imports a worker needs (SKDH takes 1-2 s) and the first-use costs of the
    computation (lazy imports inside SKDH's processes), on 12 h of a synthetic recording."""
    from features.biomarkers.activity import accel_activity_daily_features

    warm = build_frame(1, 50, seed=1).iloc[: 12 * 3600 * 50]
    accel_activity_daily_features(warm, 50.0, "S0000")
    time.sleep(0.5)  # so each worker of the pool gets one warm-up task
    return os.getpid()


def subject_task(task: tuple[str, str, float]) -> tuple[str, int, float]:
    """One subject: read its recording from Parquet and compute its daily activity rows."""
    import pandas as pd

    from features.biomarkers.activity import accel_activity_daily_features

    subject_id, path, fs = task
    started = time.perf_counter()
    frame = pd.read_parquet(path)
    rows = accel_activity_daily_features(frame, fs, subject_id)
    return subject_id, len(rows), time.perf_counter() - started


def measure_fanout(tasks: list, workers: int) -> dict:
    context = multiprocessing.get_context("spawn")
    cold = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(_warm_up, range(workers)))
        warm_started = time.perf_counter()
        results = list(pool.map(subject_task, tasks, chunksize=1))
        wall = time.perf_counter() - warm_started
    cold_wall = time.perf_counter() - cold
    return {"wall_s": wall, "cold_wall_s": cold_wall, "task_s": [r[2] for r in results],
            "rows": sum(r[1] for r in results)}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days of the single recording of (a) and (b)")
    parser.add_argument("--rate", type=int, default=50, help="sampling rate, Hz")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--subjects", type=int, default=4, help="subjects of the fan-out (c)")
    parser.add_argument("--subject-days", type=int, default=1, help="days per subject in the fan-out (c)")
    args = parser.parse_args()

    print(f"(a)+(b): one {args.days}-day recording at {args.rate} Hz, one core, {args.repeat} runs each, alternated")
    single = in_child(measure_single, args.days, args.rate, args.repeat)
    samples = single["samples"]
    skdh_s = statistics.median(single["skdh_s"])
    ours_s = statistics.median(single["ours_s"])
    for i, (a, b) in enumerate(zip(single["skdh_s"], single["ours_s"], strict=True)):
        print(f"  run {i + 1}: SKDH alone {a:.2f} s, ours {b:.2f} s")

    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="bench-biomarkers-") as folder:
        tasks = []
        for k in range(args.subjects):
            path = Path(folder) / f"S{k + 1:04d}_wrist.parquet"
            frame = build_frame(args.subject_days, args.rate, seed=100 + k)
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            tasks.append((f"S{k + 1:04d}", str(path), float(args.rate)))
        del frame
        print(f"(c): {args.subjects} subjects x {args.subject_days} day(s), spawn pool, 1 vs 2 workers, "
              f"{args.repeat} runs each, alternated")
        one, two = [], []
        for i in range(args.repeat):
            one.append(measure_fanout(tasks, 1))
            two.append(measure_fanout(tasks, 2))
            print(f"  run {i + 1}: 1 worker {one[-1]['wall_s']:.2f} s, 2 workers {two[-1]['wall_s']:.2f} s "
                  f"(cold, with spawn: {one[-1]['cold_wall_s']:.2f} s, {two[-1]['cold_wall_s']:.2f} s)")

    one_s = statistics.median(r["wall_s"] for r in one)
    two_s = statistics.median(r["wall_s"] for r in two)
    one_cold = statistics.median(r["cold_wall_s"] for r in one)
    two_cold = statistics.median(r["cold_wall_s"] for r in two)
    fan_samples = args.subjects * args.subject_days * 86400 * args.rate
    ratio = (samples / ours_s) / (samples / skdh_s)
    speedup = one_s / two_s
    figures = {
        "samples": samples,
        "days": args.days,
        "rate_hz": args.rate,
        "build_recording_s": round(single["build_s"], 2),
        "skdh_alone_s_median": round(skdh_s, 3),
        "ours_s_median": round(ours_s, 3),
        "ours_conversion_s_median": round(statistics.median(single["conversion_s"]), 3),
        "skdh_samples_per_s": round(samples / skdh_s),
        "ours_samples_per_s": round(samples / ours_s),
        "ours_to_skdh_throughput_ratio": round(ratio, 3),
        "rows": single["rows"],
        "valid_days": single["valid_days"],
        "mean_wear_min": round(single["mean_wear_min"], 1),
        "mean_mvpa_min": round(single["mean_mvpa_min"], 1),
        "same_wear_periods_as_skdh": single["same_wear_periods"],
        "same_daily_mvpa_as_skdh": single["same_daily_levels"],
        "fanout": {
            "subjects": args.subjects,
            "days_per_subject": args.subject_days,
            "samples": fan_samples,
            "cpu_count": os.cpu_count(),
            "one_worker_s_median": round(one_s, 3),
            "two_workers_s_median": round(two_s, 3),
            "speedup_2_over_1": round(speedup, 2),
            "one_worker_cold_s_median": round(one_cold, 3),
            "two_workers_cold_s_median": round(two_cold, 3),
            "speedup_cold_2_over_1": round(one_cold / two_cold, 2),
            "two_workers_samples_per_s": round(fan_samples / two_s),
            "task_s_median_one_worker": round(statistics.median(t for r in one for t in r["task_s"]), 3),
            "task_s_median_two_workers": round(statistics.median(t for r in two for t in r["task_s"]), 3),
        },
    }
    print(json.dumps(figures, indent=2))
    print(f"SKDH alone (1 core):          {samples / skdh_s / 1e6:.2f} M samples/s")
    print(f"ours, frame to table (1 core): {samples / ours_s / 1e6:.2f} M samples/s")
    print(f"ours / SKDH throughput:        {ratio:.2f}   (target >= 0.9)")
    print(f"fan-out speed-up, 2 workers over 1 (warm pools): {speedup:.2f}x   (target >= 1.7 on 2 cores); "
          f"cold, with spawn and imports: {one_cold / two_cold:.2f}x")


if __name__ == "__main__":
    main()
