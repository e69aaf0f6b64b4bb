"""Combination samplers, batched evaluation of combinations, transitivity and robustness."""

from __future__ import annotations

import copy

import pytest
import torch

from stitchwork.models import MLP, Tiny10
from stitchwork.rebasin.apply import invert_permutation, permute_model, random_permutation
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.combine import (
    Bernoulli,
    Constant,
    LambdaSampler,
    PerLayer,
    PerNeuron,
    Uniform,
    Vicinity,
    combine_states,
    mean_lambda,
    sample_lambdas,
)
from stitchwork.rebasin.combine_eval import evaluate_combinations, summarize
from stitchwork.rebasin.interpolate import lerp_state
from stitchwork.rebasin.robustness import moved_fraction, perturb_permutation, robustness_sweep
from stitchwork.rebasin.transitivity import transitivity
from stitchwork.rebasin.weight_matching import WeightMatcher
from stitchwork.training import evaluate

SAMPLERS = {
    "constant": Constant(0.3), "constant_random": Constant(None), "uniform": Uniform(),
    "bernoulli": Bernoulli(0.25), "per_neuron": PerNeuron(), "per_layer": PerLayer(),
    "vicinity": Vicinity(0.2),
}


def pair(seed: int = 0, model=lambda: Tiny10((1, 8, 8), 4, width=0.25, norm="bn")):
    torch.manual_seed(seed)
    return model().eval(), model().eval()


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samples_are_reproducible_by_seed(name):
    a, _ = pair()
    sampler = SAMPLERS[name]
    assert isinstance(sampler, LambdaSampler)
    first = sample_lambdas(sampler, a.state_dict(), 3, seed=11)
    again = sample_lambdas(sampler, a.state_dict(), 3, seed=11)
    other = sample_lambdas(sampler, a.state_dict(), 3, seed=12)
    for x, y in zip(first, again, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    if name != "constant":
        assert any(not torch.equal(first[0][k], other[0][k]) for k in first[0])
    assert "stages.conv1.1.num_batches_tracked" not in first[0]  # integer buffers stay A's


def test_sampler_ranges_and_sharing():
    a, b = pair()
    state = a.state_dict()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    uni = torch.cat([v.flatten() for v in Uniform()(state, gen()).values()])
    assert 0 <= uni.min() and uni.max() <= 1
    vic = torch.cat([v.flatten() for v in Vicinity(0.2)(state, gen()).values()])
    assert -0.2 <= vic.min() < 0 and 1 < vic.max() <= 1.2
    bern = torch.cat([v.flatten() for v in Bernoulli(0.25)(state, gen()).values()])
    assert set(bern.unique().tolist()) == {0.0, 1.0} and abs(bern.mean().item() - 0.25) < 0.05
    neuron = PerNeuron()(state, gen())
    w = torch.broadcast_to(neuron["stages.conv2.0.weight"], state["stages.conv2.0.weight"].shape)
    assert torch.equal(w[:, 0, 0, 0], w[:, -1, -1, -1])  # shared by a unit's incoming weights
    assert torch.equal(neuron["stages.head.bias"], neuron["stages.head.weight"][:, 0])
    assert torch.equal(neuron["stages.conv1.1.weight"], neuron["stages.conv1.1.running_mean"])
    layer = PerLayer()(state, gen())
    assert layer["stages.head.weight"].dim() == 0 and torch.equal(layer["stages.head.weight"], layer["stages.head.bias"])
    assert layer["stages.head.weight"] != layer["stages.conv1.0.weight"]


def test_combinations_at_the_corners_and_on_the_line():
    a, b = pair()
    sa, sb = a.state_dict(), b.state_dict()
    for p, ref in ((0.0, sa), (1.0, sb)):
        combo = combine_states(sa, sb, Bernoulli(p)(sa, torch.Generator()))
        assert all(torch.equal(combo[k], ref[k]) for k in sa if sa[k].is_floating_point())
    line = combine_states(sa, sb, Constant(0.3)(sa, torch.Generator()))
    expected = lerp_state(sa, sb, 0.3)
    assert all(torch.allclose(line[k].float(), expected[k].float(), atol=1e-6) for k in sa)
    assert mean_lambda(Constant(0.3)(sa, torch.Generator()), sa) == pytest.approx(0.3)


@pytest.mark.parametrize("strategy", ["batched", "sequential", "auto"])
def test_batched_evaluation_equals_a_loop(strategy):
    a, b = pair(model=lambda: Tiny10((1, 8, 8), 4, width=0.5, norm="bn"))
    gen = torch.Generator().manual_seed(0)
    loader = [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 4, (16,), generator=gen)) for _ in range(3)]
    sa, sb = a.state_dict(), b.state_dict()
    lams = sample_lambdas(Uniform(), sa, 4, seed=0)
    states = [combine_states(sa, sb, lam) for lam in lams] + [sa]
    result = evaluate_combinations(copy.deepcopy(a), states, loader, a, b, chunk_size=2, strategy=strategy)
    assert result["strategy"] in (("batched", "sequential") if strategy == "auto" else (strategy,))
    per = result["per_sample"]
    work = copy.deepcopy(a)
    for i, state in enumerate(states):
        work.load_state_dict(state)
        ref = evaluate(work, loader)
        assert per["loss"][i] == pytest.approx(ref["loss"], rel=1e-5)
        assert per["acc"][i] == pytest.approx(ref["acc"])
        dist = sum(((state[n] - sa[n]) ** 2).sum().item() for n, _ in a.named_parameters()) ** 0.5
        assert per["dist_a"][i] == pytest.approx(dist, rel=1e-6)
    assert per["agree_a"][-1] == 1.0 and per["kl_a"][-1] == pytest.approx(0.0, abs=1e-12)
    assert per["dist_a"][-1] == 0.0 and per["dist_b"][-1] > 0
    same = evaluate_combinations(a, [sa, sa], loader, a, b)
    assert same["pairwise_agreement"] == 1.0
    assert summarize(per["loss"])["max"] == pytest.approx(per["loss"].max())


def test_bad_combination_settings():
    a, _ = pair()
    with pytest.raises(ValueError, match="strategy 'vmap'; valid: auto, batched, sequential"):
        evaluate_combinations(a, [a.state_dict()], [], a, a, strategy="vmap")
    for k in (0, -3):
        with pytest.raises(ValueError, match="positive"):
            sample_lambdas(Uniform(), a.state_dict(), k)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Bernoulli(1.5)
    with pytest.raises(ValueError, match="eps"):
        Vicinity(-0.1)
    perm = random_permutation(spec_for(a))
    for q in (-0.1, 1.2):
        with pytest.raises(ValueError, match="q"):
            perturb_permutation(perm, q)
    with pytest.raises(ValueError, match="at least one"):
        evaluate_combinations(a, [], [], a, a)


def test_perturbation_moves_the_requested_fraction():
    spec = spec_for(MLP((10,), 3, depth=3, width=100))
    perm = random_permutation(spec, 0)
    assert moved_fraction(perm, perturb_permutation(perm, 0.0)) == 0.0
    for q in (0.1, 0.5, 1.0):
        perturbed = perturb_permutation(perm, q, seed=1)
        assert moved_fraction(perm, perturbed) == pytest.approx(q, abs=0.02)
        assert all(torch.equal(perturbed[p].sort().values, torch.arange(100)) for p in perturbed)
        again = perturb_permutation(perm, q, seed=1)
        assert all(torch.equal(perturbed[p], again[p]) for p in perm)


def planted_family():
    """A, and B and C that are A with its units relabelled: every aligned barrier is zero.

    A is made confident (large head) and the labels are its own predictions, so that
    the naive average of A and a relabelled copy is clearly worse than either.
    """
    torch.manual_seed(0)
    a = MLP((10,), 3, depth=2, width=32).eval()
    a.stages.head.weight.data *= 20
    spec = spec_for(a)
    b = permute_model(a, spec, random_permutation(spec, 1))
    c = permute_model(a, spec, random_permutation(spec, 2))
    x = torch.randn(256, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        data = [(x, a(x).argmax(1))]
    return spec, a, b, c, data


def test_transitivity_on_a_planted_family():
    spec, a, b, c, data = planted_family()
    out = transitivity(a, b, c, spec, WeightMatcher(), {"test": data}, num_points=5)
    assert abs(out["via_c"]["barriers"]["test_loss"]["max"]) < 1e-5
    assert abs(out["direct"]["barriers"]["test_loss"]["max"]) < 1e-5
    assert out["naive"]["barriers"]["test_loss"]["max"] > 0.01


def test_robustness_sweep_grows_with_q():
    spec, a, b, _, data = planted_family()
    perm = WeightMatcher()(a, b, spec)
    rows = robustness_sweep(a, b, spec, perm, [0.0, 1.0], {"test": data}, Uniform(), k=3, num_points=3)
    assert [r["q"] for r in rows] == [0.0, 1.0]
    assert abs(rows[0]["barriers"]["test_loss"]["midpoint"]) < 1e-5
    assert rows[1]["barriers"]["test_loss"]["midpoint"] > rows[0]["barriers"]["test_loss"]["midpoint"]
    assert rows[0]["combination"]["agree_a"]["min"] == 1.0
    assert rows[1]["moved"] > 0.9
    assert torch.equal(perm["fc1"], invert_permutation(random_permutation(spec, 1))["fc1"])


def test_models_on_two_devices_are_refused_by_name():
    from stitchwork.training.evaluate import DeviceMismatchError

    a, b = pair()
    with pytest.raises(DeviceMismatchError, match="model_b on meta"):
        evaluate_combinations(a, [a.state_dict()], [], a, b.to("meta"))
