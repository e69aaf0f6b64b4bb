"""Re-basin as the papers define it: original endpoints, BN reset by default, matching restarts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from stitchwork.apps.endpoints import BN_WARNING
from stitchwork.data import Digits
from stitchwork.models import MLP, Tiny10
from stitchwork.rebasin.apply import permute_model
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.interpolate import barriers, curve_barriers, interpolation_curve
from stitchwork.rebasin.weight_matching import WeightMatcher, weight_matching

from .test_rebasin_apps import TINY_CNN, TINY_MLP, compose, records
from .test_rebasin_interpolate import trained_pair


def by_hand(model, loader) -> dict[str, float]:
    """Mean cross-entropy and accuracy, written out (no library evaluation)."""
    losses, hits, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x).double()
            losses += float(F.cross_entropy(logits, y, reduction="sum"))
            hits, n = hits + int((logits.argmax(1) == y).sum()), n + len(y)
    return {"loss": losses / n, "acc": hits / n}


def reset_by_hand(model, loader):
    """BN statistics re-estimated as the exact average over ``loader`` (a copy)."""
    model = copy.deepcopy(model).eval()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    return model.eval()


def test_barriers_measure_against_the_given_endpoints():
    lam, loss = [0.0, 0.5, 1.0], [0.5, 2.0, 0.7]
    out = barriers(lam, loss, ends=(1.0, 1.4))  # the originals replace 0.5 and 0.7
    assert out["max"] == pytest.approx(2.0 - 1.2) and out["midpoint"] == pytest.approx(0.8)
    assert out["linear"] == pytest.approx(2.0 - 1.2)
    acc = barriers(lam, [0.9, 0.5, 0.8], higher_is_better=True, ends=(0.95, 0.85))
    assert acc["midpoint"] == pytest.approx(0.9 - 0.5) and acc["max"] == pytest.approx(0.9 - 0.5)
    assert barriers(lam, loss)["midpoint"] == pytest.approx(2.0 - 0.6)  # without: the curve's own


@pytest.fixture(scope="module")
def bn_pair():
    data = Digits(batch_size=64)
    data.setup()
    return data, *trained_pair(data, lambda shape: Tiny10(shape, 10, width=0.25, norm="bn"), 1, 3e-3)


def test_curve_keeps_the_original_endpoints_under_bn_reset(bn_pair):
    data, a, b = bn_pair
    train, test = data.loader("train", shuffle=False), data.loader("test", shuffle=False)
    post = lambda model, lam: reset_by_hand(model, train)  # noqa: E731
    curve = interpolation_curve(a, b, {"test": test}, num_points=3, post=post)
    values = curve["test"]
    original = [by_hand(a, test), by_hand(b, test)]
    reset = [by_hand(reset_by_hand(a, train), test), by_hand(reset_by_hand(b, train), test)]
    for q in ("loss", "acc"):
        np.testing.assert_allclose(values["original_ends"][q], [e[q] for e in original], rtol=1e-5)
        np.testing.assert_allclose([values[q][0], values[q][-1]], [e[q] for e in reset], rtol=1e-5)
    assert abs(original[0]["loss"] - reset[0]["loss"]) > 1e-4  # the reset does move A
    mid = values["loss"][1]
    expected = mid - 0.5 * (original[0]["loss"] + original[1]["loss"])
    assert curve_barriers(curve)["test_loss"]["midpoint"] == pytest.approx(expected, abs=1e-5)  # float32 vs float64 sums


def objective_by_hand(spec, model_a, model_b, perm) -> float:
    """Σ ⟨W_A, π(W_B)⟩ over the parameters (buffers left out), in float64."""
    state_a, state_p = model_a.state_dict(), permute_model(model_b, spec, perm).state_dict()
    return sum(float((state_a[k].double() * state_p[k].double()).sum()) for k in state_a if k not in spec.buffers)


def test_restarts_keep_the_best_objective_and_one_restart_is_plain_weight_matching():
    torch.manual_seed(0)
    a, b = MLP((20,), 5, depth=4, width=24), MLP((20,), 5, depth=4, width=24)
    spec, sa, sb = spec_for(a), a.state_dict(), b.state_dict()
    plain = weight_matching(spec, sa, sb, 100, 3)
    one = WeightMatcher(seed=3)(a, b, spec)
    assert all(torch.equal(one[p], plain[p]) for p in spec.perms)
    found = WeightMatcher(seed=3, restarts=5).restart_candidates(a, b, spec)
    assert [c["seed"] for c in found] == [3, 4, 5, 6, 7]
    for c in found:
        own = weight_matching(spec, sa, sb, 100, c["seed"])
        assert all(torch.equal(c["perm"][p], own[p]) for p in spec.perms)
        assert c["objective"] == pytest.approx(objective_by_hand(spec, a, b, c["perm"]), rel=1e-12)
    objectives = [c["objective"] for c in found]
    assert len({round(o, 9) for o in objectives}) > 1  # the visiting order matters here
    best = WeightMatcher(seed=3, restarts=5)(a, b, spec)
    assert objective_by_hand(spec, a, b, best) == pytest.approx(max(objectives), rel=1e-12)
    with pytest.raises(ValueError, match="restarts must be an integer >= 1, got 0"):
        WeightMatcher(restarts=0)


def test_restarts_and_post_are_in_the_job_identity():
    from stitchwork.apps.config import job_id

    default = compose("rebasin", [])
    assert default.post == "bn_reset" and compose("combine", []).post == "bn_reset"
    assert job_id(compose("rebasin", ["matcher.restarts=1"])) == job_id(default)
    assert job_id(compose("rebasin", ["matcher.restarts=2"])) != job_id(default)
    assert job_id(compose("rebasin", ["post=none"])) != job_id(default)


def test_rebasin_app_records_restarts_and_both_endpoints(run_cli, tmp_path):
    proc = run_cli("rebasin", *TINY_CNN, "num_points=3", "matcher.restarts=2", "post_batches=4", "device=cpu")
    assert BN_WARNING not in proc.stdout + proc.stderr  # the default resets BN statistics
    (record,) = records(tmp_path / "outputs" / "rebasin")
    m = record["metrics"]
    assert [r["seed"] for r in m["restarts"]] == [0, 1]
    best = max(m["restarts"], key=lambda r: r["objective"])
    assert all(m[k] == v for k, v in best.items() if k.startswith("barrier_"))
    acc = m["curve"]["test"]["acc"]
    assert m["barrier_endpoints"] == "original" and m["a_test_acc_post"] == acc[0] and m["b_test_acc_post"] == acc[-1]
    assert m["a_test_loss"] != m["a_test_loss_post"]  # BN reset moved A; barriers use the original
    assert m["barrier_test_acc_midpoint"] == pytest.approx(0.5 * (m["a_test_acc"] + m["b_test_acc"]) - acc[1])
    assert m["barrier_test_loss_midpoint"] == pytest.approx(
        m["curve"]["test"]["loss"][1] - 0.5 * (m["a_test_loss"] + m["b_test_loss"]))  # fmt: skip


def test_interpolated_bn_statistics_warn_once(run_cli):
    proc = run_cli("rebasin", *TINY_CNN, "num_points=3", "post=none", "device=cpu")
    assert (proc.stdout + proc.stderr).count(BN_WARNING) == 1
    quiet = run_cli("rebasin", *TINY_MLP, "num_points=3", "post=none", "device=cpu")
    assert BN_WARNING not in quiet.stdout + quiet.stderr  # no BatchNorm, nothing to warn about
