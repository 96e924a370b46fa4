"""scripts/plot_run.py: each phase's kept step is found from the run's restart records."""

from __future__ import annotations

import json

import pytest

from conftest import load_script


def _module():
    return load_script("scripts/plot_run.py")


def _val(step: int, select: float) -> dict:
    return {"type": "monitor", "step": step, "validation": {"VIF": 0.5, "Qabf": 0.5, "TCR": 1.0, "select": select}}


def test_kept_steps_follow_the_restart_records_and_the_last_phase_best(tmp_path):
    pytest.importorskip("matplotlib")
    mod = _module()
    # phase 1: steps 0-300 (best 2.2 at 200, a lower 2.1 at 300); phase 2 from step 300: best 2.5 at 500
    recs = [_val(0, 1.0), _val(100, 2.0), _val(200, 2.2), _val(300, 2.1),
            {"type": "restart", "step": 300, "select": 2.2}, _val(400, 2.3), _val(500, 2.5), _val(600, 2.4)]
    recs += [{"type": "step", "step": s, "loss": 1.0 / s} for s in (10, 20, 30)]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    _, vals = mod.read_log(log)
    assert mod.kept_steps(vals, mod.read_restarts(log)) == [(200, 2.2), (500, 2.5)]
    assert mod.kept_steps(vals, []) == [(500, 2.5)]  # one phase: the best of the run
    out = tmp_path / "c.png"
    assert mod.main([str(log), str(out)]) == 0 and out.stat().st_size > 0
