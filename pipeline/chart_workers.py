"""The worker processes the report's charts are drawn in, side by side (one per core).

A light module: the runner imports it to start the fork server early, without the report's
libraries. The server is `multiprocessing`'s forkserver: a fresh interpreter that imports
`pipeline.report` and nothing else, and forks a worker per pool slot. Not `fork` from the
run's process: that process holds threads (DuckDB's, jemalloc's), and a worker forked from
it once died of a segfault inside matplotlib in the test suite. Not `spawn`: each worker
would import the pipeline first (~2 s).

Like any `spawn` or `forkserver` child, a worker imports the run's main module as
`__mp_main__`: a script that calls the pipeline must guard its work with
`if __name__ == "__main__":`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PRELOAD = ["pipeline.report"]


def available() -> int:
    """How many workers may draw charts side by side: one per core; 0 means the run's own
    process draws them (one core, or no forkserver on this platform)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if cores and cores >= 2 else 0


def start_server() -> None:
    """Start the fork server now, so that it has imported the report (~1.5 s, in its own
    process) by the time the charts are drawn. Idempotent; a no-op without workers."""
    if available():
        _context()  # the preload list must be set before the server starts
        multiprocessing.forkserver.ensure_running()


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` chart workers, each of which exits when this process has ended."""
    return ProcessPoolExecutor(
        workers, mp_context=_context(), initializer=_exit_with_run, initargs=(os.getpid(),)
    )


def _exit_with_run(run: int) -> None:
    """In a worker: exit when the run's process `run` has ended. A run killed by a signal (a
    batch timeout's SIGTERM, the OOM killer) never reaches the pool's shutdown, and its
    idle workers would wait for charts forever (each holds the job queue open itself); nor
    does the fork server end, as each worker holds its pipe from the run."""

    def watch() -> None:
        _wait_until_ended(run)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()


def _wait_until_ended(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # readable once the process has ended, zombie or not
    except AttributeError:  # not Linux: ask every 0.2 s
        with contextlib.suppress(ProcessLookupError):
            while True:
                os.kill(pid, 0)
                time.sleep(0.2)
        return
    except ProcessLookupError:  # already gone
        return
    select.select([fd], [], [])
