"""Activation maximisation, dataset examples and responses on a small trained digits model."""

from __future__ import annotations

import copy

import matplotlib.image as mpimg
import pytest
import torch

from stitchwork.cut import front
from stitchwork.data import Digits
from stitchwork.models import Tiny10
from stitchwork.training import TrainRecipe, fit_classifier
from stitchwork.visualize import (
    MaximizeSettings,
    channel_responses,
    compare_models,
    comparison_figures,
    data_statistics,
    maximize,
    score_images,
    top_examples,
    top_variance_channels,
)


@pytest.fixture(scope="module")
def trained():
    """A digits tiny10 trained on one thread (this module's tests run on it; restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = Digits(image_size=16, batch_size=64)
    data.setup()
    torch.manual_seed(0)
    model = Tiny10(data.input_shape, 10, width=0.5)
    recipe = TrainRecipe(optimizer="adam", lr=3e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                         schedule="cosine", epochs=3, batch_size=64)
    metrics = fit_classifier(model, data, recipe, seed=0,
                             trainer_options={"accelerator": "cpu", "enable_progress_bar": False})
    assert metrics["test_acc"] > 0.8
    test_x = torch.cat([x for x, _ in data.loader("test", shuffle=False)])
    yield model.eval(), data, test_x
    torch.set_num_threads(threads)


def channel_means(model, cut_point, x):
    with torch.no_grad():
        acts = front(model, cut_point)(x)
    return acts.mean(dim=(2, 3)) if acts.dim() == 4 else acts


@pytest.mark.parametrize("cut_point", ["conv3", "conv6", "pool"])
def test_optimised_image_beats_noise_mean_and_the_test_images(trained, cut_point):
    model, data, test_x = trained
    pixel_range, _ = data_statistics(data.loader("train"))
    channels = top_variance_channels(model, cut_point, data.loader("test", shuffle=False), 3)
    vis = maximize(model, cut_point, channels, MaximizeSettings(steps=512, seed=0), pixel_range=pixel_range)
    k = len(channels)
    reached = channel_means(model, cut_point, vis.images)[torch.arange(k), channels]
    assert torch.allclose(reached, vis.activations, atol=1e-5)  # the reported score is the real one
    noise = torch.randn((64, *model.input_shape), generator=torch.Generator().manual_seed(1))
    on_noise = channel_means(model, cut_point, noise)[:, channels].mean(0)  # expected over noise
    on_mean = channel_means(model, cut_point, test_x.mean(0, keepdim=True))[0, channels]
    on_data = channel_means(model, cut_point, test_x)[:, channels].max(0).values  # best real digit
    # Ratios measured over model seeds 0-4 (and AVX2 kernels forced), maximize seeds 0 and 1, at
    # 512 steps (Lucid's): reached / on_noise >= 1.54, / on_mean >= 2.79, / on_data >= 1.47 at
    # conv3 and conv6 but only 1.04-1.6 at pool (a global average, where the best of 359 real
    # digits comes close). 128 steps gave 1.05, 2.57 and 0.89: too few for these claims.
    assert (reached > 1.2 * on_noise).all(), (reached, on_noise)
    assert (reached > 2 * on_mean.clamp_min(0.05)).all(), (reached, on_mean)
    assert (reached > (0.9 if cut_point == "pool" else 1.1) * on_data).all(), (reached, on_data)
    # valid inputs: inside the data's range, at the model's own size
    assert vis.images.shape == (k, *model.input_shape)
    assert vis.images.min() >= pixel_range.low[0] and vis.images.max() <= pixel_range.high[0]


def test_single_position_objective_raises_that_position(trained):
    model, _, _ = trained
    vis = maximize(model, "conv4", [2], MaximizeSettings(steps=64), position=(1, 6))
    with torch.no_grad():
        acts = front(model, "conv4")(vis.images)[0, 2]  # (8, 8)
    assert acts[1, 6] == pytest.approx(float(vis.activations[0]), abs=1e-5)
    assert acts[1, 6] > 2 * acts.mean()


def test_same_seed_same_image_other_seed_other_image(trained):
    model, _, _ = trained
    run = lambda seed: maximize(model, "conv5", [0, 3], MaximizeSettings(steps=10, seed=seed)).images  # noqa: E731
    first, again, other = run(4), run(4), run(5)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_model_is_left_as_it_was(trained):
    model, _, _ = trained
    model.train()
    before = copy.deepcopy(model.state_dict())
    maximize(model, "conv2", [1], MaximizeSettings(steps=5))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()


def test_top_examples_and_top_variance_match_brute_force(trained):
    model, data, test_x = trained
    channels = [4, 0, 9]
    top = top_examples(model, "conv6", channels, data.loader("test", batch_size=50, shuffle=False), k=5)
    scores = channel_means(model, "conv6", test_x)  # (n, C)
    for row, c in enumerate(channels):
        want = scores[:, c].topk(5)
        assert torch.equal(top.indices[row], want.indices)
        assert torch.allclose(top.scores[row], want.values, atol=1e-5)
        assert torch.equal(top.images[row], test_x[want.indices])
    chosen = top_variance_channels(model, "conv6", data.loader("test", shuffle=False), 4)
    assert chosen == scores.double().var(0).topk(4).indices.tolist()


def test_response_table_one_row_per_channel_normalised_to_reference(trained):
    model, _, _ = trained
    channels = [1, 5, 7]
    vis = maximize(model, "conv4", channels, MaximizeSettings(steps=24))
    other = Tiny10(model.input_shape, 10, width=0.5).eval()  # untrained: another network
    table = channel_responses({"A": model, "A copy": copy.deepcopy(model), "other": other}, "conv4",
                              vis.images, channels)
    rows = table.rows()
    assert [r["channel"] for r in rows] == channels
    assert all(r["A_rel"] == 1.0 and r["A copy_rel"] == pytest.approx(1.0) for r in rows)
    want = channel_means(other, "conv4", vis.images)[torch.arange(3), channels]
    assert torch.allclose(torch.tensor([r["other"] for r in rows]), want, atol=1e-6)
    assert torch.allclose(table.relative("other"), want / vis.activations, atol=1e-5)
    assert torch.allclose(score_images(model, "conv4", vis.images, channels), vis.activations, atol=1e-6)


def test_comparison_writes_one_row_per_channel_one_column_per_model(trained, tmp_path):
    model, data, _ = trained
    other = Tiny10(model.input_shape, 10, width=0.5).eval()
    models = {"A": model, "B": other, "B→A": other, "merged": copy.deepcopy(model)}
    channels = [0, 6]
    comparison = compare_models(models, "conv4", channels, MaximizeSettings(steps=8),
                                batches=data.loader("test", shuffle=False), k=4)
    assert comparison.responses.rows()[1]["merged_rel"] == pytest.approx(1.0)
    layouts = comparison_figures(comparison, tmp_path, title="tiny10")
    for name, layout in layouts.items():
        assert (layout.n_rows, layout.n_cols) == (2, 4), name
        assert mpimg.imread(tmp_path / f"{name}.png").shape[:2] == layout.size_px[::-1]
    assert comparison.examples["A"].images.shape == (2, 4, *model.input_shape)
