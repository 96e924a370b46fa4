"""``map_processes``: every item's result reaches ``on_done`` with its item, errors surface, no worker outlives it."""

from __future__ import annotations

import multiprocessing as mp
import sys

import pytest

from emma_fusion.concurrency import map_processes


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def _collect(fn, items, **kw) -> list[tuple[int, object]]:
    """(item, result or the exception raised) for every item, in the order ``on_done`` saw them."""
    seen = []

    def done(item, fut):
        try:
            seen.append((item, fut.result()))
        except ValueError as e:
            seen.append((item, e))

    map_processes(fn, items, done, **kw)
    return seen


def test_in_this_process_results_come_in_input_order():
    assert _collect(_square, [3, 1, 2]) == [(3, 9), (1, 1), (2, 4)]
    assert _collect(_square, []) == []


@pytest.mark.parametrize("processes", [0, 2])
def test_each_result_reaches_its_item_and_errors_surface_per_item(processes):
    seen = dict(_collect(_square, list(range(-2, 6)), processes=processes))
    assert sorted(seen) == list(range(-2, 6))
    assert {k: v for k, v in seen.items() if k >= 0} == {k: k * k for k in range(6)}
    assert all(isinstance(seen[k], ValueError) and str(seen[k]) == f"negative: {k}" for k in (-2, -1))


@pytest.mark.parametrize("processes", [0, 2])
def test_an_error_in_on_done_stops_the_run_and_leaves_no_worker(processes):
    calls = []

    def done(item, fut):
        calls.append(item)
        fut.result()

    with pytest.raises(ValueError, match="negative"):
        map_processes(_square, [1, -1, *range(2, 20)], done, processes=processes)
    assert -1 in calls and (processes or calls == [1, -1])
    assert mp.active_children() == []


def test_the_initializer_runs_only_in_workers():
    def boom():
        raise AssertionError("initializer ran in this process")

    assert _collect(_square, [2], initializer=boom) == [(2, 4)]


def test_progress_bar_only_when_asked_and_on_a_terminal(capsys, monkeypatch):
    _collect(_square, [1, 2], progress=True, desc="squares", unit="n")
    assert capsys.readouterr().err == ""  # stderr is not a terminal here (as in a log file): no \r lines
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _collect(_square, [1, 2], progress=False, desc="squares")
    assert capsys.readouterr().err == ""
    _collect(_square, [1, 2], progress=True, desc="squares", unit="n")
    assert "squares" in capsys.readouterr().err
