"""scripts/ship_model.py: packaging trained nets (U-Fuser, fp16 sensing nets with a gate report)."""

import json

import pytest
import torch

from emma_fusion.nets import UFuser
from emma_fusion.weights import load_model, load_state, save_weights

from conftest import load_script


@pytest.fixture()
def ship(tmp_path, monkeypatch):
    mod = load_script("scripts/ship_model.py")
    monkeypatch.setattr(mod, "MODELS", tmp_path / "models")
    return mod


def test_ship_ufuser_keeps_tensors_and_records_sha(ship, tmp_path):
    torch.manual_seed(0)
    src = save_weights(tmp_path / "run_best.safetensors", UFuser())
    assert ship.main([str(src), "--name", "m", "--note", "ten steps"]) == 0
    reg = json.loads((ship.MODELS / "registry.json").read_text())
    assert reg["m"]["arch"] == "ufuser" and reg["m"]["note"] == "ten steps" and len(reg["m"]["sha256"]) == 64
    a, _ = load_state(src)
    b, meta = load_state(ship.MODELS / "m.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta["note"] == "ten steps" and meta["trained_as"] == "run_best.safetensors"
    load_model(ship.MODELS / "m.safetensors")


def test_ship_half_keeps_vectors_float32_and_gate(ship, tmp_path):
    torch.manual_seed(0)
    src = save_weights(tmp_path / "u.safetensors", UFuser())
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "ratio_ir": 0.8}))
    ship.main([str(src), "--name", "h", "--note", "n", "--half", "--gate", str(gate)])
    b, _ = load_state(ship.MODELS / "h.safetensors")
    assert {v.dtype for v in b.values() if v.ndim > 1} == {torch.float16}
    assert {v.dtype for v in b.values() if v.ndim <= 1 and v.is_floating_point()} == {torch.float32}
    assert json.loads((ship.MODELS / "registry.json").read_text())["h"]["gate"]["ratio_ir"] == 0.8
    out = load_model(ship.MODELS / "h.safetensors")(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    assert torch.isfinite(out).all()


def test_ship_refuses_a_file_that_is_no_net(ship, tmp_path):
    junk = tmp_path / "x.safetensors"
    junk.write_bytes(b"garbage")
    with pytest.raises(Exception, match="cannot read weights"):
        ship.main([str(junk), "--note", "n"])
    assert not (ship.MODELS / "emma-default.safetensors").exists()
