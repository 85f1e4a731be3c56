"""Run one measurement in a fresh process, so its peak memory and imports are its own."""

from __future__ import annotations

import multiprocessing
import queue as queues


def in_child(target, *args) -> dict:
    """Call ``target(*args, queue)`` in a new spawned process and return what it put on the queue.

    A child that dies without putting anything (an exception, the OOM killer) is an error naming
    its exit code, not a benchmark waiting forever.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not process.is_alive() and queue.empty():
                process.join()
                raise RuntimeError(f"the measurement {target.__name__} died (exit code {process.exitcode}) "
                                   "without a result: its traceback is above") from None
    process.join()
    return result
