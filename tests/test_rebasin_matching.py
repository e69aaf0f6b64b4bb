"""Both matchers recover a planted permutation exactly; mismatched models are refused."""

from __future__ import annotations

import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.models.vgg import VGG, make_layers

from stitchwork.models import MLP, ResNet20, Tiny10, vgg11
from stitchwork.models.outside import outside_model, torchvision_model
from stitchwork.rebasin.activation_matching import ActivationMatcher
from stitchwork.rebasin.apply import (
    invert_permutation,
    permute_model,
    permute_tensor,
    random_permutation,
)
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.matching import Matcher, Naive
from stitchwork.rebasin.spec import SpecError
from stitchwork.rebasin.weight_matching import WeightMatcher, weight_matching

from .test_rebasin_fx import ConvFlattenLinear
from .test_rebasin_spec import randomise_norms


def narrow_torchvision_vgg() -> nn.Module:
    """torchvision's VGG class (features, AdaptiveAvgPool2d(7), flatten, classifier) at widths a
    CPU test affords: its first classifier layer reads 16 channels x 49 positions, as vgg16_bn's
    reads 512 x 49 (whose 25088 x 4096 weight makes weight matching minutes long on a CPU)."""
    net = VGG(make_layers([8, "M", 16, "M", 16], batch_norm=True), num_classes=10)
    net.classifier = nn.Sequential(nn.Linear(16 * 49, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 24),
                                   nn.ReLU(True), nn.Dropout(), nn.Linear(24, 10))  # fmt: skip
    return outside_model(net, (3, 16, 16))


MODELS = {
    "mlp": lambda: MLP((20,), 5, depth=3, width=32),
    "tiny10-bn": lambda: Tiny10((3, 8, 8), 10, width=0.5, norm="bn"),
    "vgg11-none": lambda: vgg11((3, 8, 8), 10, width=0.125, norm="none"),
    "resnet20-ln": lambda: ResNet20((3, 8, 8), 10, width=1, norm="ln"),
    "resnet20-bn": lambda: ResNet20((3, 8, 8), 10, width=1, norm="bn"),
    "torchvision-resnet18": lambda: torchvision_model((3, 16, 16), 10, "resnet18"),  # spec inferred by fx
    "torchvision-vgg": narrow_torchvision_vgg,  # fx: the classifier reads the last conv's channels in blocks
    "conv-flatten-linear": lambda: ConvFlattenLinear(channels=6, hidden=8),
}


def planted(name: str, randomise: bool = True):
    torch.manual_seed(0)
    model_a = MODELS[name]().eval()
    if randomise:
        randomise_norms(model_a)
    spec = spec_for(model_a)
    pi = random_permutation(spec, seed=7)
    return spec, model_a, permute_model(model_a, spec, pi), pi


def assert_recovers(spec, model_a, model_b, pi, found):
    for p in spec.perms:
        assert torch.equal(found[p], invert_permutation(pi)[p]), p
    aligned = permute_model(model_b, spec, found)
    assert all(torch.equal(aligned.state_dict()[k], v) for k, v in model_a.state_dict().items())
    x = torch.randn(4, *model_a.input_shape, generator=torch.Generator().manual_seed(0))
    x = x.to(next(model_a.parameters()).device)
    with torch.no_grad():
        torch.testing.assert_close(aligned.eval()(x), model_a(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_weight_matching_recovers_planted_permutation(name):
    spec, model_a, model_b, pi = planted(name)
    found = WeightMatcher(seed=0)(model_a, model_b, spec)
    assert_recovers(spec, model_a, model_b, pi, found)


# Random-init deep nets have dead or constant units (deep no-norm VGG at 1×1 maps; BN
# with random statistics), which no activation statistic can tell apart; these cases keep
# every unit alive, so the optimum is unique.
ACTIVATION_CASES = [("mlp", True), ("tiny10-bn", False), ("resnet20-ln", True), ("resnet20-bn", True)]


@pytest.mark.parametrize(("name", "randomise"), ACTIVATION_CASES)
@pytest.mark.parametrize("method", ["corr", "inner"])
def test_activation_matching_recovers_planted_permutation(name, randomise, method):
    spec, model_a, model_b, pi = planted(name, randomise)
    gen = torch.Generator().manual_seed(0)
    batches = 8 if name == "mlp" else 3  # MLP units die more easily on few inputs
    data = [2 * torch.randn(64, *model_a.input_shape, generator=gen) for _ in range(batches)]
    found = ActivationMatcher(method)(model_a, model_b, spec, data)
    assert_recovers(spec, model_a, model_b, pi, found)


def test_weight_matching_objective_never_decreases_and_stops():
    torch.manual_seed(0)
    a, b = MLP((20,), 5, 3, 32), MLP((20,), 5, 3, 32)
    spec, history = spec_for(a), []
    weight_matching(spec, a.state_dict(), b.state_dict(), seed=3, history=history)
    assert 1 <= len(history) < 100
    assert all(y >= x - 1e-9 for x, y in zip(history, history[1:], strict=False))
    same = weight_matching(spec, a.state_dict(), b.state_dict(), seed=3)
    again = weight_matching(spec, a.state_dict(), b.state_dict(), seed=3)
    assert all(torch.equal(same[p], again[p]) for p in same)


def test_matchers_share_the_interface():
    for matcher in (Naive(), WeightMatcher(), ActivationMatcher()):
        assert isinstance(matcher, Matcher)


def test_different_widths_or_architectures_are_refused():
    a = MLP((20,), 5, 2, 16)
    spec = spec_for(a)
    for other in (MLP((20,), 5, 2, 17), MLP((20,), 5, 3, 16)):
        with pytest.raises(SpecError, match="architecture|width"):
            WeightMatcher()(a, other, spec)
        with pytest.raises(SpecError):
            ActivationMatcher()(a, other, spec, [torch.randn(4, 20)])


def test_bad_matcher_settings():
    with pytest.raises(ValueError, match="max_sweeps"):
        WeightMatcher(max_sweeps=0)
    with pytest.raises(ValueError, match="corr"):
        ActivationMatcher("cosine")
    a = MLP((20,), 5, 2, 16)
    with pytest.raises(ValueError, match="data"):
        ActivationMatcher()(a, a, spec_for(a))


def test_saved_permutation_is_reused(tmp_path):
    from stitchwork.rebasin.apply import save_permutation
    from stitchwork.rebasin.matching import Saved

    spec, model_a, model_b, pi = planted("mlp")
    found = WeightMatcher()(model_a, model_b, spec)
    path = save_permutation(found, tmp_path / "permutation.pt")
    reused = Saved(str(path))(model_a, model_b, spec)
    assert all(torch.equal(reused[p], found[p]) for p in spec.perms)
    other = MLP((20,), 5, depth=3, width=16)
    with pytest.raises(SpecError):
        Saved(str(path))(other, other, spec_for(other))


def textbook_weight_matching(spec, state_a, state_b, sweeps: int, seed: int):
    """Git Re-Basin's loop as the paper writes it: every visit re-permutes B's tensors."""
    a = {k: v.double() for k, v in state_a.items() if k not in spec.buffers}
    b = {k: v.double() for k, v in state_b.items() if k not in spec.buffers}
    perm = {p: torch.arange(n) for p, n in spec.perm_sizes.items()}
    gen, names, history = torch.Generator().manual_seed(seed), spec.perms, []
    for _ in range(sweeps):
        gained = False
        for p in [names[i] for i in torch.randperm(len(names), generator=gen).tolist()]:
            n = spec.perm_sizes[p]
            sim = torch.zeros(n, n, dtype=torch.float64)
            for key, axis in spec.perm_to_axes[p]:
                if key not in a:
                    continue
                w_b = b[key]
                for other, q in enumerate(spec.axes_to_perm[key]):
                    if q is not None and other != axis:  # a blocked axis moves whole blocks
                        blocks = torch.arange(w_b.shape[other]).view(spec.perm_sizes[q], -1)
                        w_b = w_b.index_select(other, blocks[perm[q]].reshape(-1))
                w_a = a[key].unflatten(axis, (n, -1)).movedim(axis, 0).reshape(n, -1)
                sim += w_a @ w_b.unflatten(axis, (n, -1)).movedim(axis, 0).reshape(n, -1).T
            _, cols = linear_sum_assignment(sim.numpy(), maximize=True)
            old, new = sim[torch.arange(n), perm[p]].sum(), sim[torch.arange(n), cols].sum()
            if new - old > 1e-12 * (1.0 + abs(old)):
                gained, perm[p] = True, torch.as_tensor(cols)
        history.append(float(sum((a[k] * permute_tensor(spec, perm, k, b[k])).sum() for k in a)))
        if not gained:
            break
    return perm, history


@pytest.mark.parametrize(
    "name", ["mlp", "tiny10-bn", "vgg11-none", "resnet20-ln", "resnet20-bn", "torchvision-vgg", "conv-flatten-linear"]
)
def test_weight_matching_equals_the_textbook_loop_sweep_by_sweep(name):
    """Two unrelated random nets: same permutations and same objective after every sweep."""
    torch.manual_seed(1)
    model_a, model_b = MODELS[name](), MODELS[name]()
    spec = spec_for(model_a)
    for sweeps in (1, 2, 100):
        history = []
        found = weight_matching(spec, model_a.state_dict(), model_b.state_dict(), sweeps, seed=5, history=history)
        expected, expected_history = textbook_weight_matching(spec, model_a.state_dict(), model_b.state_dict(),
                                                              sweeps, seed=5)
        assert all(torch.equal(found[p], expected[p]) for p in spec.perms), sweeps
        assert history == pytest.approx(expected_history, rel=1e-12), sweeps
    assert len(history) > 2  # the unrelated nets needed several sweeps: later sweeps were exercised


def test_weight_matching_from_an_initial_permutation():
    spec, model_a, model_b, pi = planted("resnet20-bn")
    answer = invert_permutation(pi)
    start = random_permutation(spec, seed=11)
    found = weight_matching(spec, model_a.state_dict(), model_b.state_dict(), init=start)
    assert all(torch.equal(found[p], answer[p]) for p in spec.perms)
    history = []
    kept = weight_matching(spec, model_a.state_dict(), model_b.state_dict(), init=answer, history=history)
    assert all(torch.equal(kept[p], answer[p]) for p in spec.perms) and len(history) == 1


def test_weight_matching_leaves_its_inputs_alone():
    """float64 inputs are viewed, not copied, on the CPU: they must come back unchanged."""
    spec, model_a, model_b, _ = planted("tiny10-bn")
    state_a = {k: v.double() if v.is_floating_point() else v for k, v in model_a.state_dict().items()}
    state_b = {k: v.double() if v.is_floating_point() else v for k, v in model_b.state_dict().items()}
    before = {k: v.clone() for k, v in state_b.items()}
    weight_matching(spec, state_a, state_b)
    assert all(torch.equal(state_b[k], before[k]) for k in before)
