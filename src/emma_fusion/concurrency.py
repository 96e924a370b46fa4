"""Running work concurrently without leaving threads or processes behind on an error or Ctrl-C.

Used by the folder API (:func:`thread_streams`) and by folder scoring (:func:`sigint_deferred`).
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["sigint_deferred", "thread_streams"]


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
