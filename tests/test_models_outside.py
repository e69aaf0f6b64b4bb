"""Outside models: any traceable module cut by module path, exact splits, local weights, identity."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

from stitchwork.cut import cut_point_shapes, split
from stitchwork.data import Digits
from stitchwork.models.module_cut import CutRefusedError, ModuleCutModel
from stitchwork.models.outside import read_state_dict, torchvision_model, vit_tiny
from stitchwork.stitching import stitch
from stitchwork.utils.hashing import content_hash
from stitchwork.zoo import model_identity


def _randomise_norms(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_the_split_model_computes_what_the_torchvision_module_computes():
    torch.manual_seed(0)
    net = _randomise_norms(torchvision.models.resnet18(num_classes=10))
    model = ModuleCutModel(net, (3, 32, 32)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert {"layer1_0", "layer2_1", "layer4_1", "avgpool"} <= set(model.cut_points)
    shapes = cut_point_shapes(model)
    assert shapes["layer2_1"] == (128, 4, 4) and shapes["logits"] == (10,)


def test_vit_cut_points_are_the_encoder_blocks_with_token_activations():
    model = vit_tiny((1, 8, 8), 10)
    assert model.cut_points == [f"encoder_layers_encoder_layer_{i}" for i in range(4)] + ["encoder"]
    assert cut_point_shapes(model)["encoder_layers_encoder_layer_1"] == (5, 64)  # CLS + 2x2 patches


def test_a_cut_inside_a_residual_block_is_refused_with_the_reason():
    with pytest.raises(CutRefusedError, match=r"'layer2\.0\.conv1' is refused: .*skip or residual"):
        torchvision_model((3, 32, 32), 10, "resnet18", cut_points=["layer2.0.conv1"])


def test_an_unknown_module_path_lists_close_and_valid_paths():
    with pytest.raises(CutRefusedError, match=r"unknown cut point 'layer2\.O' \(close: .*layer2\.0.*valid module paths"):
        torchvision_model((3, 32, 32), 10, "resnet18", cut_points=["layer2.O"])


def test_an_unknown_torchvision_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"model.name='resnet181'.*close matches: resnet18"):
        torchvision_model((3, 32, 32), 10, "resnet181")


def test_requested_cut_points_by_dotted_path(tmp_path):
    model = torchvision_model((3, 32, 32), 10, "resnet18", cut_points=["layer3.1", "layer2"])
    assert model.cut_points == ["layer2", "layer3_1"]


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "lightning"])
def test_weights_round_trip_through_every_file_format(tmp_path, wrap):
    torch.manual_seed(1)
    net = _randomise_norms(torchvision.models.resnet18(num_classes=10))
    state = net.state_dict()
    saved = {"plain": state, "module_prefix": {f"module.{k}": v for k, v in state.items()},
             "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}}[wrap]  # fmt: skip
    path = tmp_path / "weights.pt"
    torch.save(saved, path)
    loaded = torchvision_model((3, 32, 32), 10, "resnet18", weights_path=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert set(read_state_dict(path)) == set(state)


def test_weights_of_another_architecture_list_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit ResNet: missing keys \['bn1\..*unexpected keys \['classifier"):
        torchvision_model((3, 32, 32), 10, "resnet18", weights_path=str(path))


def test_a_classifier_head_of_another_size_stays_fresh(tmp_path):
    path = tmp_path / "r18-1000.pt"
    net = torchvision.models.resnet18(num_classes=1000)
    torch.save(net.state_dict(), path)
    model = torchvision_model((3, 32, 32), 10, "resnet18", weights_path=str(path))
    conv = next(v for k, v in model.state_dict().items() if k.endswith("conv1.weight"))
    assert torch.equal(conv, net.conv1.weight)


def test_the_identity_holds_the_weights_sha256_not_the_path(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "copy" / "b.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), first)
    second.parent.mkdir()
    shutil.copy(first, second)

    def key(path):
        cfg = {"_target_": "stitchwork.models.outside.torchvision_model", "name": "resnet18", "weights_path": str(path)}
        return content_hash(model_identity(cfg, {"_target_": "stitchwork.data.Digits"}, {"epochs": 0}, 0))

    assert key(first) == key(second)
    data = bytearray(second.read_bytes())
    data[-1] ^= 1
    second.write_bytes(bytes(data))
    assert key(first) != key(second)
    with pytest.raises(FileNotFoundError, match="model.weights_path .* does not exist"):
        key(tmp_path / "missing.pt")


def test_direct_self_stitch_of_a_torchvision_model_is_the_identity():
    data = Digits()
    data.setup()
    torch.manual_seed(0)
    model = _randomise_norms(torchvision_model(data.input_shape, 10, "resnet18"))
    stitched, rec = stitch(model, "layer1_0", model, "layer1_0", data, matching_options={"ridge": 0.0})
    # W = I on every channel that carries signal (a random-init ReLU can leave one dead at 0)
    x = torch.stack([data.train_set[i][0] for i in range(256)])
    with torch.no_grad():
        live = split(model, "layer1_0")[0](x).abs().amax((0, 2, 3)) > 0
    torch.testing.assert_close(stitched.stitch.weight[live][:, live], torch.eye(int(live.sum())), atol=1e-3, rtol=0)
    assert rec["dm_residual_fit"] < 1e-6 and rec["stitched_acc"] == rec["acc_b"]


def test_the_readme_commands_for_a_downloaded_checkpoint(run_cli, tmp_path):
    """List its cut points, stitch it to a zoo model, compare both with CKA: a random-init
    ResNet-18 file stands in for the user's download; it is loaded, never trained."""
    import json

    path = tmp_path / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    outside = ["model@model_a=torchvision", "model_a.name=resnet18", f"model_a.weights_path={path}",
               "recipe@recipe_a=pretrained", "recipe_b.epochs=1"]  # fmt: skip
    listing = run_cli("layers", "model=torchvision", "model.name=resnet18", f"model.weights_path={path}").stdout
    assert "layer2_1" in listing and "layer4_1" in listing
    run_cli("stitch", *outside, "layer_pair=matrix", "layer_pair.fronts=[layer1_1,layer2_1]",
            "layer_pair.backs=[conv4]", "stitch.resize=true", "sweep_name=byo")  # fmt: skip
    run_cli("compare", *outside, "similarity=linear_cka", "sweep_name=byo")
    (stitched,) = [json.loads(p.read_text()) for p in (tmp_path / "outputs" / "stitch").rglob("results.json")]
    assert [p["status"] for p in stitched["metrics"]["pairs"]] == ["ok", "ok"]
    (compared,) = [json.loads(p.read_text()) for p in (tmp_path / "outputs" / "compare").rglob("results.json")]
    assert compared["status"] == "ok"
    metadata = [json.loads(p.read_text()) for p in Path(os.environ["STITCHWORK_ZOO"]).rglob("metadata.json")]
    loaded = [m for m in metadata if m["identity"]["model"].get("name") == "resnet18"]
    assert loaded and all(m["identity"]["model"]["weights_path"]["sha256"] for m in loaded)


@pytest.mark.parametrize(("name", "kwargs"), [("resnet18", {}), ("vit_tiny_patch16_224", {"img_size": 16, "patch_size": 4})])
def test_timm_models_offer_their_blocks_and_unknown_names_list_close_matches(name, kwargs):
    """Exact splits of these models are tested with every other model in test_models_cut.py."""
    pytest.importorskip("timm", reason="the timm extra is not installed (pip install 'stitchwork[timm]')")
    from stitchwork.models.outside import timm_model

    assert len(timm_model((3, 16, 16), 10, name, **kwargs).cut_points) >= 8
    with pytest.raises(ValueError, match=r"'resnet181' is not a timm model; close matches: resnet18"):
        timm_model((3, 16, 16), 10, "resnet181")


def test_stochastic_depth_follows_the_cut_model_mode():
    """Traced through, StochasticDepth would keep the trace's train mode and drop rows in eval."""
    from torchvision.ops import StochasticDepth

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.drop = torch.nn.Conv2d(3, 3, 3, padding=1), StochasticDepth(0.5, "row")

        def forward(self, x):
            return x + self.drop(self.conv(x))

    net = torch.nn.Sequential(Block(), Block(), torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    model = ModuleCutModel(net, (3, 8, 8))
    x = torch.randn(64, 3, 8, 8)
    model.eval(), net.eval()
    assert torch.equal(model(x), net(x)) and torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    dropped = model(x)
    assert not torch.equal(dropped, net(x))  # in train mode rows are dropped again
