"""Running work concurrently without leaving threads or processes behind on an error or Ctrl-C.

:func:`thread_streams` serves the folder API; :func:`map_processes` serves folder scoring and the
benchmark's fusion and scoring workers.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
from .progress import progress_bar

__all__ = ["sigint_deferred", "thread_streams", "map_processes"]

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ignore Ctrl-C (SIGINT) inside the block, so a clean shutdown is not cut short.

    A second Ctrl-C while worker threads finish their work would otherwise let the interpreter
    exit under running torch threads (a C++ ``terminate``, exit 134). Only the main thread can
    change signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def thread_streams(streams: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``streams`` worker threads that share torch's intra-op threads between them.

    Each worker runs torch with ``torch.get_num_threads() // streams`` threads (at least 1), so
    ``streams`` networks can run at once without oversubscribing the cores. On exit the
    process-wide thread count is restored (torch's setting is global); on an error or Ctrl-C,
    work not yet started is cancelled and the running work is waited for (with further Ctrl-C
    ignored meanwhile), so no thread outlives the block.
    """
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(streams, initializer=torch.set_num_threads, initargs=(max(1, threads // streams),))
    try:
        yield pool
    finally:
        with sigint_deferred():
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)


def _run_here(fn: Callable[[T], R], item: T) -> Future:
    """``fn(item)`` run now, as a done future: its result, or the exception it raised."""
    fut: Future = Future()
    try:
        fut.set_result(fn(item))
    except Exception as e:
        fut.set_exception(e)
    return fut


def map_processes(
    fn: Callable[[T], R],
    items: Sequence[T],
    on_done: Callable[[T, Future], Any],
    *,
    processes: int = 0,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    start_method: str | None = None,
    progress: bool = False,
    desc: str | None = None,
    unit: str = "it",
    leave: bool = True,
) -> None:
    """Run ``fn(item)`` for every item in worker processes (or in this one), with a progress bar.

    ``on_done(item, future)`` is called in this process as each item finishes: in input order when
    they run here, in the order they finish in a pool. ``future`` is done: ``future.result()``
    returns ``fn(item)`` or raises what it raised, so a caller can stop at the first error or note it
    and go on. A worker that dies makes ``result()`` raise
    :class:`~concurrent.futures.process.BrokenProcessPool` for every item it leaves unfinished.

    Args:
        processes: worker processes; 0 runs the items here, one after another (no ``initializer``).
        initializer, initargs: run once in each worker process before its first item.
        start_method: how workers start (``"spawn"``: a fresh interpreter); None: the platform default.
        progress, desc, unit, leave: the tqdm bar on stderr (shown only with ``progress``, on a terminal).

    On an error or Ctrl-C (raised by ``on_done`` or while waiting), items not yet started are
    cancelled and running ones are waited for, with further Ctrl-C ignored meanwhile, so no worker
    outlives the call; the exception then propagates.
    """
    with progress_bar(total=len(items), enabled=progress, desc=desc, unit=unit, leave=leave) as bar:
        if processes < 1:
            for item in items:
                on_done(item, _run_here(fn, item))
                bar.update()
            return
        ctx = mp.get_context(start_method) if start_method else None
        pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=initializer, initargs=initargs)
        try:
            futures = {pool.submit(fn, item): item for item in items}
            for fut in as_completed(futures):
                on_done(futures[fut], fut)
                bar.update()
        except BaseException:
            with sigint_deferred():  # let the workers finish their item and exit
                pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
