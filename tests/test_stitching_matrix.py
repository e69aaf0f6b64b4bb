"""Stitching matrices in one job: entries equal single-pair stitches, skipped pairs, errors."""

import pytest
import torch

from stitchwork.cut import UnknownCutPointError, cut_outputs, front
from stitchwork.models import Tiny10
from stitchwork.stitching import stitch
from stitchwork.stitching.matrix import matrices, matrix_method, stitch_matrix
from stitchwork.stitching.matrix_plan import check_cut_list
from stitchwork.training import TrainRecipe, fit_classifier

TRAINER = {"accelerator": "cpu", "enable_progress_bar": False}
RECIPE = TrainRecipe(optimizer="adam", lr=3e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                     schedule="cosine", epochs=4, batch_size=64)  # fmt: skip
RESIZE = {"resize": True}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(digits, _one_thread):
    """Two tiny10 digits models of different seeds."""
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = Tiny10(digits.input_shape, 10)
        fit_classifier(net, digits, RECIPE, seed=seed, trainer_options=TRAINER)
        nets.append(net)
    return nets


def _compare(matrix_record: dict, single: dict, tol: float) -> None:
    """Every key of the single-pair record is in the matrix record, numbers equal to ``tol``."""
    assert set(single) <= set(matrix_record), set(single) - set(matrix_record)
    for key, value in single.items():
        if key.endswith(("_s", "time_s")) or key == "history":
            continue
        if isinstance(value, float):
            assert matrix_record[key] == pytest.approx(value, abs=tol, rel=0), key
        else:
            assert matrix_record[key] == value, key


def test_cut_outputs_equal_the_fronts(digits, models):
    x = next(iter(digits.loader("test", batch_size=64)))[0]
    outs = cut_outputs(models[0], x, ["conv5", "conv2", "pool"])
    assert list(outs) == ["conv2", "conv5", "pool"]
    for name, value in outs.items():
        assert torch.equal(value, front(models[0], name)(x))


def test_direct_matrix_equals_single_pair_jobs_and_records_skipped_pairs(digits, models):
    a, b = models
    fronts, backs = ["conv2", "conv6", "pool"], ["conv3", "conv8", "pool"]
    records = stitch_matrix(a, fronts, b, backs, digits, stitch_options=RESIZE, max_pairs_per_step=2)
    assert [(r["front"], r["back"]) for r in records] == [(f, k) for f in fronts for k in backs]
    by_status = {s: [r for r in records if r["status"] == s] for s in ("ok", "skipped")}
    assert len(by_status["ok"]) == 5 and len(by_status["skipped"]) == 4  # conv <-> flat needs flatten_linear
    assert all("flatten_linear" in r["reason"] for r in by_status["skipped"])
    for record in by_status["ok"]:
        _, single = stitch(a, record["front"], b, record["back"], digits, stitch_options=RESIZE)
        _compare(record, single, tol=1e-6)
    grid = matrices(records, fronts, backs)
    assert grid["stitched_acc"][0][0] == records[0]["stitched_acc"] and grid["stitched_acc"][0][2] is None
    for key in ("dm_residual_test", "dm_residual_centered_test", "dm_residual_fit", "dm_residual_centered_fit"):
        assert grid[key][2][2] == records[8][key]  # both definitions, in the grid and per pair
    assert records[8]["dm_residual_test"] < records[8]["dm_residual_centered_test"]  # ‖B‖² ≥ ‖B − mean‖²


def test_task_loss_pair_inside_a_matrix_equals_the_pair_alone(digits, models):
    a, b = models
    options = {"epochs": 2, "batch_size": 64}
    records = stitch_matrix(a, ["conv3", "conv5", "conv7"], b, ["conv2", "conv4", "conv7"], digits,
                            stitch_options=RESIZE, matching="task_loss", matching_options=options,
                            max_pairs_per_step=4)  # fmt: skip
    inside = next(r for r in records if (r["front"], r["back"]) == ("conv5", "conv4"))
    (alone,) = stitch_matrix(a, ["conv5"], b, ["conv4"], digits, stitch_options=RESIZE, matching="task_loss",
                             matching_options=options)  # fmt: skip
    _, single = stitch(a, "conv5", b, "conv4", digits, stitch_options=RESIZE, matching="task_loss",
                       matching_options=options, trainer_options=TRAINER)  # fmt: skip
    # Documented bound: equal to float rounding (bit for bit on CPU in this session).
    for other in (alone, single):
        _compare(inside, other, tol=1e-6)
        for mine, theirs in zip(inside["history"], other["history"], strict=True):
            assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-6)
            assert mine["val_acc"] == theirs["val_acc"] and mine["lr"] == pytest.approx(theirs["lr"])
    assert [e["epoch"] for e in inside["history"]] == [0, 1] and inside["cached"] is True


def test_within_network_direct_matrix_is_exact_on_the_diagonal(digits, models):
    a = models[0]
    cuts = ["conv1", "conv4", "conv8"]
    records = stitch_matrix(a, cuts, a, cuts, digits, stitch_options=RESIZE, matching_options={"ridge": 0.0})
    for r in records:
        if r["front"] == r["back"]:
            assert r["dm_residual_fit"] < 1e-8 and r["dm_residual_test"] < 1e-8
            assert r["stitched_acc"] == r["acc_a"] and r["agreement_b"] == 1.0
        else:
            assert r["dm_residual_test"] > 1e-3


def test_soft_and_l1_methods_read_their_defaults_from_the_single_pair_functions():
    from stitchwork.stitching.api import resolve_matching

    name, options, extra = matrix_method(resolve_matching("soft_task_loss", epochs=3))
    assert name == "soft_task_loss" and options["loss"] == "soft" and options["temperature"] == 4.0
    assert options["epochs"] == 3 and options["lr"] == 1e-3 and not extra
    name, options, extra = matrix_method(resolve_matching("l1", l1_lambda=0.5))
    assert options["l1"] == 0.5 and extra == {"l1_lambda": 0.5, "sparsity_tol": 1e-3}
    assert matrix_method(resolve_matching("direct_then_task"))[1]["direct_init"] is True
    with pytest.raises(ValueError, match="built-in matching methods"):
        matrix_method(lambda ctx: {})


def test_bad_cut_lists_name_the_key_and_the_valid_cut_points(digits):
    net = Tiny10(digits.input_shape, 10)
    with pytest.raises(UnknownCutPointError, match=r"layer_pair.fronts: unknown cut point\(s\) 'conv99'.*conv1, conv2"):
        check_cut_list(net, ["conv1", "conv99"], "layer_pair.fronts")
    with pytest.raises(ValueError, match="layer_pair.backs is an empty list"):
        check_cut_list(net, [], "layer_pair.backs")
    with pytest.raises(ValueError, match="more than once"):
        check_cut_list(net, ["conv1", "conv1"], "fronts")
    assert check_cut_list(net, ("pool", "conv1"), "fronts") == ["pool", "conv1"]  # order kept


def test_a_pair_whose_loss_turns_non_finite_fails_alone(digits, models):
    """One pair poisoned with NaN weights is marked failed at its first step; the pair it shared
    the optimiser with trains exactly as it does alone."""
    from stitchwork.stitching.api import resolve_stitch
    from stitchwork.stitching.matrix_plan import plan_pairs
    from stitchwork.stitching.matrix_task import fit_task

    a, b = models
    factory = resolve_stitch("affine", resize=True)

    def trained(fronts):
        pairs = plan_pairs(a, fronts, b, ["conv4"], factory)
        if len(fronts) == 2:
            with torch.no_grad():
                for p in pairs[0].stitched.trainable_parameters():
                    p.fill_(float("nan"))
        fit_task(pairs, a, b, digits, epochs=1, batch_size=64)
        return pairs

    poisoned, healthy = trained(["conv3", "conv5"])
    (alone,) = trained(["conv5"])
    assert poisoned.status == "failed" and "NonFiniteLossError" in poisoned.reason and "epoch 0" in poisoned.reason
    assert healthy.status == "pending" and healthy.report["history"] == alone.report["history"]
    for mine, theirs in zip(healthy.stitched.trainable_parameters(), alone.stitched.trainable_parameters(), strict=True):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("budget", [None, 1])  # default budget: stored; 1 byte: dropped, models run again
def test_training_pass_from_the_fit_pass_activations_equals_running_the_models_again(digits, models, budget):
    """The metrics' training pass over the direct fit's stored activations gives exactly the
    values of a pass that runs A and B again (the same tensors, the same batches)."""
    from stitchwork.stitching.api import resolve_stitch
    from stitchwork.stitching.matrix_direct import ActivationStore, fit_direct
    from stitchwork.stitching.matrix_metrics import matrix_metrics
    from stitchwork.stitching.matrix_plan import plan_pairs

    a, b = models
    pairs = [p for p in plan_pairs(a, ["conv2", "conv6"], b, ["conv3", "conv8"], resolve_stitch("affine", resize=True))]
    loader = digits.loader("train", batch_size=512, shuffle=False)
    store = ActivationStore(len(loader)) if budget is None else ActivationStore(len(loader), max_bytes=budget)
    fit_direct(pairs, a, b, loader, 1e-6, store)
    assert (store.batches is None) == (budget == 1)
    if store.batches is not None:
        assert len(store.batches) == len(loader) and {p.input_key for p in pairs} <= set(store.batches[0][0])
    matrix_metrics(pairs, a, b, digits, train_batches=store.batches)
    stored = [dict(p.metrics) for p in pairs]
    matrix_metrics(pairs, a, b, digits)
    assert stored == [p.metrics for p in pairs]
    assert all(m["dm_residual_fit"] > 0 for m in stored)


@pytest.mark.parametrize("kind", ["affine", "low_rank"])
def test_training_split_figures_from_the_fit_sums_equal_a_training_pass(digits, models, kind):
    """Affine maps: ``dm_residual_fit`` and B's Gaussian come from the direct fit's float64 sums
    (no second pass). The pass maps the rows in float32, the sums use the same parameters in
    float64: largest relative gap measured 3.1e-9, bound 1e-7. A stitch that
    is not affine in its parameters (low rank) has no such figures and takes the pass."""
    from stitchwork.stitching.api import resolve_stitch
    from stitchwork.stitching.matrix_direct import fit_direct
    from stitchwork.stitching.matrix_metrics import matrix_metrics
    from stitchwork.stitching.matrix_plan import plan_pairs

    a, b = models
    options = {"resize": True, "rank": 4} if kind == "low_rank" else {"resize": True}
    pairs = plan_pairs(a, ["conv1", "conv5", "conv8"], b, ["conv2", "conv7"], resolve_stitch(kind, **options))
    figures = fit_direct(pairs, a, b, digits.loader("train", batch_size=512, shuffle=False), 1e-6)
    assert set(figures) == ({id(p) for p in pairs} if kind == "affine" else set())
    matrix_metrics(pairs, a, b, digits, fit_figures=figures)
    from_sums = [dict(p.metrics) for p in pairs]
    matrix_metrics(pairs, a, b, digits)  # the training pass over A and B again
    gaps = []
    for mine, theirs in zip(from_sums, (p.metrics for p in pairs), strict=True):
        assert mine.keys() == theirs.keys()
        for key in ("dm_residual_fit", "dm_residual_centered_fit", "ood_score", "ood_mahalanobis_stitched"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-7, abs=1e-12), key
            gaps.append(abs(mine[key] - theirs[key]) / abs(theirs[key]))
        assert mine["dm_residual_fit"] > 0
        assert {k: v for k, v in mine.items() if "fit" not in k and "ood" not in k} == \
            {k: v for k, v in theirs.items() if "fit" not in k and "ood" not in k}  # fmt: skip
    print(f"{kind}: largest relative gap {max(gaps):.1e}")
