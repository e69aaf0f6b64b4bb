"""The permutation spec of a model: its own description, else one inferred by torch.fx.

A model with re-basin support describes its permutation axes beside its architecture, in a
``permutation_spec()`` method built from the helpers of :mod:`stitchwork.axes` (see
``MLP``, ``Tiny10``, ``VGG``, ``ResNet20``); adding such a model touches its own file and
its yaml only. Any other ``nn.Module`` gets a spec inferred from a torch.fx trace.
"""

from __future__ import annotations

from torch import nn

from .spec import PermutationSpec, SpecError


def spec_for(model: nn.Module) -> PermutationSpec:
    """``model.permutation_spec()`` when the model describes its own, else one inferred by fx.

    Raises
    ------
    SpecError
        When the model has no spec of its own and fx inference fails; the message names
        the operation that blocked inference.
    """
    describe = getattr(model, "permutation_spec", None)
    if callable(describe):
        return describe()
    from .fx_spec import infer_spec  # deferred: fx tracing is only needed for other models

    try:
        return infer_spec(model)
    except SpecError as err:
        raise SpecError(
            f"{type(model).__name__} has no hand-written permutation spec (a permutation_spec() "
            f"method, as MLP, Tiny10, VGG and ResNet20 have) and fx inference failed: {err}"
        ) from err
