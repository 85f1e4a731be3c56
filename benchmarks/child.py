"""Run one measurement in a fresh process, so its peak memory and imports are its own."""

from __future__ import annotations

import multiprocessing


def in_child(target, *args) -> dict:
    """Call ``target(*args, queue)`` in a new spawned process and return what it put on the queue."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result
