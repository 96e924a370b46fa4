"""Weight files: safetensors metadata, the authors' .pth format, strict key checks, sha256."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from emma_fusion import __version__
from emma_fusion.errors import EmmaError
from emma_fusion.nets import SensingUNet, UFuser
from emma_fusion.weights import load_model, load_state, packaged_models, save_weights, sha256_file


def test_safetensors_roundtrip_with_metadata(tmp_path):
    torch.manual_seed(0)
    net = SensingUNet(8)
    p = save_weights(tmp_path / "a.safetensors", net, {"note": "x"})
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "sensing-unet" and json.loads(meta["config"]) == {"width": 8}
    assert meta["emma_fusion_version"] == __version__ and meta["note"] == "x"
    back = load_model(p, arch="sensing-unet")
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


def test_authors_pth_loads_strictly(tmp_path):
    torch.manual_seed(0)
    net = UFuser()
    # The authors save a DataParallel state dict with torch.save.
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, tmp_path / "EMMA.pth")
    back = load_model(tmp_path / "EMMA.pth")
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x, x), net.eval()(x, x))
    torch.save(SensingUNet(16).state_dict(), tmp_path / "Ai.pth")
    assert load_model(tmp_path / "Ai.pth", arch="sensing-unet").width == 16


def test_pth_with_code_is_refused(tmp_path):
    # A pickle that needs arbitrary classes is rejected by weights_only loading.
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(EmmaError, match="cannot read weights"):
        load_state(tmp_path / "evil.pth")


def test_mismatch_names_keys(tmp_path):
    sd = UFuser().state_dict()
    sd.pop("last.0.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["up4.0.weight"] = torch.zeros(1, 2)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(EmmaError) as e:
        load_model(tmp_path / "bad.pth")
    msg = str(e.value)
    assert "missing keys: last.0.bias" in msg and "unexpected keys: extra.weight" in msg and "up4.0.weight" in msg


def test_packaged_models_have_valid_hashes():
    models = packaged_models()
    from importlib import resources

    for name, entry in models.items():
        path = resources.files("emma_fusion") / "models" / entry["file"]
        assert sha256_file(str(path)) == entry["sha256"], name


def test_corrupt_packaged_model_is_refused(monkeypatch):
    models = packaged_models()
    if not models:
        pytest.skip("no shipped model in this checkout")
    name, entry = next(iter(models.items()))
    monkeypatch.setattr("emma_fusion.weights.packaged_models", lambda: {name: {**entry, "sha256": "0" * 64}})
    with pytest.raises(EmmaError, match="corrupt"):
        load_model(name)


def test_weights_with_nan_are_refused_by_name(tmp_path):
    net = SensingUNet(width=4)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = save_weights(tmp_path / "nan.safetensors", net)
    with pytest.raises(EmmaError, match="hold NaN or infinite values"):
        load_model(path, arch=None)


def test_a_folder_given_as_weights_is_named_a_folder(tmp_path):
    with pytest.raises(EmmaError, match="is a folder"):
        load_state(tmp_path)


def test_an_old_pickle_protocol_gives_no_warning_line(tmp_path, recwarn):
    import pickle

    path = tmp_path / "old.pth"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(EmmaError, match="cannot read weights"):
        load_state(path)
    assert not [w for w in recwarn if "pickle" in str(w.message).lower()]
