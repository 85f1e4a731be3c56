"""ActiGraph counts from raw accelerometry: our implementation against agcounts, alone and two at once.

Builds the synthetic wrist recording of ``benchmarks/biomarkers.py`` (default 7 days at 100 Hz,
the rate that costs most: ActiGraph's method upsamples it 3-fold) and measures, each in a fresh
process pinned to one core so that its peak memory is its own:

(a) agcounts 0.2.6 (ActiGraph's published Python description of the method, GPL-3: imported from
    the pinned wheel ``make test`` puts in ``.venv/reference/``, never installed; skipped when the
    wheel is absent) ``get_counts(accel, freq, epoch=60)``, on the recording's first
    ``--reference-hours`` (its low-pass filter is a Python loop: some 90 s per day at 100 Hz);
(b) ours, ``features.biomarkers.counts.actigraph_counts(accel, fs, epoch_s=60)``, on the same
    hours (the counts are checked equal) and on the whole recording;

alternately, ``--repeat`` times, then (c) two of ours at once on two cores, as two subjects of a
build would run: the throughput of each against (b) alone (contention: a method that saturated
the memory bus would fall well below 1). Peak memory is the process's peak resident set during
the call above what it held before (Linux ``clear_refs``), so the input does not count.

Prints samples/s (tri-axial samples), peak memory (MB) and the ratios, then one JSON line of the
headline figures.

Usage: .venv/bin/python benchmarks/counts.py [--days 7] [--rate 100] [--repeat 3] [--reference-hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from benchmarks.child import in_child  # noqa: E402  (needs the path above)

AGCOUNTS_WHEEL = REPOSITORY / ".venv" / "reference" / "agcounts-0.2.6-py3-none-any.whl"


def _accel(days: int, rate_hz: int):
    import numpy as np

    from benchmarks.biomarkers import build_frame

    frame = build_frame(days, rate_hz)
    return np.stack([frame[f"accel_{axis}_g"].to_numpy(dtype=np.float64) for axis in "xyz"], axis=1)


def _resident_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (the peak since the last reset) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(which: str, days: int, rate_hz: int, hours: float | None, core: int, queue) -> None:
    """Time one implementation on the recording (its first ``hours``, if given) in this fresh
    process, pinned to ``core``."""
    import gc

    import numpy as np

    os.sched_setaffinity(0, {core % os.cpu_count()})
    accel = _accel(days, rate_hz)
    if hours is not None:
        accel = accel[: int(hours * 3600 * rate_hz)].copy()
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # the peak resident set starts again from now
        before = _resident_mb("VmRSS")
    except OSError:  # a kernel without it: the peak since the process started, input included
        before = 0.0
    if which == "agcounts":
        sys.path.append(str(AGCOUNTS_WHEEL))
        from agcounts.extract import get_counts

        start = time.perf_counter()
        counts = get_counts(accel, freq=rate_hz, epoch=60)
    else:
        from features.biomarkers.counts import actigraph_counts

        start = time.perf_counter()
        counts = actigraph_counts(accel, rate_hz, epoch_s=60)
    seconds = time.perf_counter() - start
    queue.put({"seconds": seconds, "samples": accel.shape[0], "peak_mb_above_input": _resident_mb("VmHWM") - before,
               "checksum": int(np.asarray(counts, dtype=np.int64).sum()), "epochs": int(counts.shape[0])})


def _two_at_once(days: int, rate_hz: int) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # each thread waits on its own child process
        return list(pool.map(lambda core: in_child(measure, "ours", days, rate_hz, None, core), (0, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days of the recording")
    parser.add_argument("--rate", type=int, default=100, help="sampling rate, Hz (an ActiGraph rate: 30-100 by 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median is reported")
    parser.add_argument("--reference-hours", type=float, default=2.0, help="hours of the recording agcounts runs on")
    args = parser.parse_args()

    with_reference = AGCOUNTS_WHEEL.is_file()
    print(f"{args.days}-day recording at {args.rate} Hz, 60-s epochs, one core each, {args.repeat} runs, alternated; "
          f"agcounts on its first {args.reference_hours:g} h")
    ours, reference, ours_short = [], [], []
    for i in range(args.repeat):
        if with_reference:
            reference.append(in_child(measure, "agcounts", args.days, args.rate, args.reference_hours, 0))
            ours_short.append(in_child(measure, "ours", args.days, args.rate, args.reference_hours, 0))
        ours.append(in_child(measure, "ours", args.days, args.rate, None, 0))
        line = f"  run {i + 1}: ours {ours[-1]['seconds']:.2f} s, {ours[-1]['peak_mb_above_input']:.0f} MB"
        if with_reference:
            line += (f"; on {args.reference_hours:g} h: agcounts {reference[-1]['seconds']:.2f} s, "
                     f"{reference[-1]['peak_mb_above_input']:.0f} MB, ours {ours_short[-1]['seconds']:.3f} s, "
                     f"{ours_short[-1]['peak_mb_above_input']:.0f} MB")
            if (reference[-1]["checksum"], reference[-1]["epochs"]) != (ours_short[-1]["checksum"],
                                                                        ours_short[-1]["epochs"]):
                raise SystemExit("the counts of ours and agcounts differ: this benchmark compares equal results")
        print(line)
    pair = _two_at_once(args.days, args.rate)
    samples = ours[0]["samples"]
    ours_rate = samples / statistics.median(r["seconds"] for r in ours)
    contended = statistics.median(samples / r["seconds"] for r in pair)
    figures = {
        "days": args.days, "rate_hz": args.rate,
        "ours_samples_per_s": round(ours_rate),
        "ours_peak_mb": round(statistics.median(r["peak_mb_above_input"] for r in ours)),
        "ours_two_at_once_per_process_ratio": round(contended / ours_rate, 3),
    }
    print(f"ours:                        {ours_rate / 1e6:.2f} M samples/s, peak "
          f"{figures['ours_peak_mb']} MB above the input")
    if with_reference:
        short = reference[0]["samples"]
        reference_rate = short / statistics.median(r["seconds"] for r in reference)
        ours_short_rate = short / statistics.median(r["seconds"] for r in ours_short)
        figures.update(agcounts_samples_per_s=round(reference_rate),
                       agcounts_peak_mb=round(statistics.median(r["peak_mb_above_input"] for r in reference)),
                       ours_same_hours_peak_mb=round(statistics.median(r["peak_mb_above_input"] for r in ours_short)),
                       ours_over_agcounts_throughput=round(ours_short_rate / reference_rate, 1))
        print(f"on {args.reference_hours:g} h, agcounts:         {reference_rate / 1e6:.2f} M samples/s, peak "
              f"{figures['agcounts_peak_mb']} MB (ours {figures['ours_same_hours_peak_mb']} MB; the same counts)")
        print(f"ours / agcounts throughput:  {figures['ours_over_agcounts_throughput']:.1f}")
    else:
        print(f"agcounts: not measured ({AGCOUNTS_WHEEL} is absent; `make test` downloads it)")
    print(f"two of ours at once, each:   {contended / 1e6:.2f} M samples/s = "
          f"{figures['ours_two_at_once_per_process_ratio']:.2f} of alone")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
