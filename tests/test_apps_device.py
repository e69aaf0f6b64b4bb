"""The apps' ``device`` setting: how it resolves, what it refuses, and models that disagree.

End-to-end runs with ``device=cpu`` and the default ``device=auto`` are in each app's own
test file; runs with ``device=cuda`` are in test_cuda.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from stitchwork.apps.common import resolve_device, single_device_trainer_options
from stitchwork.apps.config import conf_dir
from stitchwork.models import Tiny10
from stitchwork.rebasin.activation_matching import activation_matching
from stitchwork.rebasin.builders import spec_for
from stitchwork.stitching import AffineStitch, build_stitched
from stitchwork.training.evaluate import DeviceMismatchError

VALID = "valid: auto, cpu, cuda, cuda:N"


def _fake_cuda(monkeypatch, count: int, current: int = 0) -> None:
    """Pretend this machine has ``count`` CUDA devices (only what resolve_device asks)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)


def test_cpu_is_the_cpu_and_auto_follows_cuda_availability():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected


def test_cuda_names_resolve_to_an_indexed_device(monkeypatch):
    _fake_cuda(monkeypatch, count=2, current=1)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert str(resolve_device("cuda")) == "cuda:1"  # what a job records
    with pytest.raises(ValueError, match="device=cuda:2: this machine has 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:", "cuda:-1", "cuda:0:1", " cpu", "mps", 0, None])
def test_bad_device_names_are_refused_with_the_valid_ones(name):
    with pytest.raises(ValueError, match=f"unknown device {name!r}; {VALID}"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_a_clear_error(monkeypatch, name):
    _fake_cuda(monkeypatch, count=0)
    with pytest.raises(RuntimeError, match=rf"device={name} asks for CUDA, but torch.cuda.is_available\(\) is false"):
        resolve_device(name)
    assert resolve_device("auto") == torch.device("cpu")


def _trainer_cfg(name: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("stitch", overrides=["layer_pair.front=conv4", f"trainer={name}"]).trainer


def test_task_loss_fits_run_on_the_job_device_whatever_the_base_training_trainer():
    ddp = _trainer_cfg("ddp")  # accelerator auto, 2 devices, strategy ddp: base training only
    on_cpu = single_device_trainer_options(ddp, torch.device("cpu"))
    assert (on_cpu["accelerator"], on_cpu["devices"]) == ("cpu", 1)
    assert not {"strategy", "num_nodes", "sync_batchnorm"} & set(on_cpu)
    assert on_cpu["log_every_n_steps"] == ddp.log_every_n_steps  # other options pass through
    on_gpu = single_device_trainer_options(_trainer_cfg("cpu"), torch.device("cuda", 1))
    assert (on_gpu["accelerator"], on_gpu["devices"]) == ("gpu", [1])


def _tiny_pair():
    torch.manual_seed(0)
    a = Tiny10((1, 8, 8), 10, width=0.25)
    return a, Tiny10((1, 8, 8), 10, width=0.25).to("meta")  # B on another device


def test_stitching_models_on_two_devices_is_a_clear_error():
    a, b = _tiny_pair()
    with pytest.raises(DeviceMismatchError, match="stitching needs its models on one device, got "
                       "model_a on cpu, model_b on meta; move them with model.to"):  # fmt: skip
        build_stitched(a, "conv4", b, "conv4", AffineStitch)


def test_activation_matching_models_on_two_devices_is_a_clear_error():
    a, b = _tiny_pair()
    data = [torch.randn(4, 1, 8, 8)]
    with pytest.raises(DeviceMismatchError, match="activation matching needs its models on one device, got "
                       "model_a on cpu, model_b on meta"):  # fmt: skip
        activation_matching(spec_for(a), a, b, data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="device=cuda fails only where there is no CUDA")
def test_bad_device_and_missing_cuda_fail_the_job_before_any_work(run_cli, tmp_path):
    errors = {}
    for device in ("gpu", "cuda"):  # one job folder: device is not part of the identity
        proc = run_cli("compare", f"device={device}", check=False)
        assert proc.returncode != 0 and "training base model" not in proc.stderr + proc.stdout
        (path,) = (tmp_path / "outputs" / "compare").rglob("results.json")
        record = json.loads(path.read_text())
        assert record["status"] == "failed" and record["config"]["device"] == device
        errors[device] = record["error"]
    assert errors["gpu"] == f"ValueError: unknown device 'gpu'; {VALID}"
    assert errors["cuda"].startswith("RuntimeError: device=cuda asks for CUDA, but torch.cuda.is_available() is false")
    assert errors["cuda"].endswith("use device=cpu, or device=auto")
