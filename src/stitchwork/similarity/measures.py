"""Similarity measures as objects: the function and the facts its consumers rely on.

A measure is a subclass of :class:`Measure` that declares its ``name``, whether it is
``symmetric`` (``m(X, Y) == m(Y, X)``: :func:`~stitchwork.similarity.all_pairs.all_pairs`
mirrors such a measure in a self-comparison and computes the others entry by entry) and
whether it is a ``distance`` (0 means identical) rather than a similarity, and may offer a
streaming :meth:`~Measure.accumulator`. A concrete subclass that forgets ``symmetric`` is
refused when it is defined: mirroring an asymmetric measure gives wrong values silently.

Defining a subclass registers it by name (pass ``register=False`` to opt out), so
:func:`get_measure` and :data:`MEASURES` look it up; the app builds measures from
``conf/similarity/measure/<name>.yaml`` (``_target_`` names the class), so a new measure is
its module and its yaml. Every measure maps ``(X, Y, **kwargs) -> float`` on ``(n, d)``
inputs (``spatial=`` is passed through for conv maps).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from ._checks import SimilarityInputError
from .cca import cca, pwcca_result, svcca
from .cka import linear_cka, rbf_cka
from .procrustes import procrustes
from .rsa import rsa
from .streaming import LinearCKAAccumulator, MinibatchCKAAccumulator, SimilarityAccumulator

_REGISTRY: dict[str, type[Measure]] = {}


class Measure(abc.ABC):
    """A similarity index on paired ``(n, d)`` activations; call it as ``measure(X, Y, **kw)``.

    Class attributes
    ----------------
    name
        The name configs and results use.
    symmetric
        ``True`` if ``m(X, Y) == m(Y, X)`` for all inputs; required.
    distance
        ``True`` for a distance (0 = identical), ``False`` (default) for a similarity.
    canonical
        ``True`` for the CCA family, whose results carry ``trivial_correlations`` (the count
        forced to 1 by ``rank X + rank Y > n - 1``) and which the compare app pools by default.
    """

    name: ClassVar[str]
    symmetric: ClassVar[bool]
    distance: ClassVar[bool] = False
    canonical: ClassVar[bool] = False

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls):
            return
        for attr, kind in (("name", str), ("symmetric", bool), ("distance", bool)):
            if not isinstance(getattr(cls, attr, None), kind):
                raise TypeError(f"measure {cls.__name__} must declare {attr} (a {kind.__name__})")
        if register:
            taken = _REGISTRY.get(cls.name)
            if taken is not None and _path(taken) != _path(cls):
                raise TypeError(f"measure name {cls.name!r} is taken by {_path(taken)}")
            _REGISTRY[cls.name] = cls

    @abc.abstractmethod
    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        """The index of paired rows ``X (n, dx)``, ``Y (n, dy)``."""

    def evaluate(self, X: Any, Y: Any, **options: Any) -> tuple[float, dict[str, Any]]:
        """The index and facts about how it was computed (e.g. ``trivial_correlations``)."""
        return float(self(X, Y, **options)), {}

    def accumulator(self, **options: Any) -> SimilarityAccumulator | None:
        """A fresh accumulator computing this measure over streamed batches, or ``None``."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class LinearCKA(Measure):
    """Linear CKA (Kornblith et al. 2019), biased; streamable exactly over all rows."""

    name, symmetric, debiased = "linear_cka", True, False

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return linear_cka(X, Y, debiased=self.debiased, **options)

    def accumulator(self, **options: Any) -> LinearCKAAccumulator:
        return LinearCKAAccumulator(debiased=self.debiased, **options)


class LinearCKADebiased(LinearCKA):
    """Linear CKA from the unbiased HSIC estimator (Song et al. 2012); needs n >= 4."""

    name, debiased = "linear_cka_debiased", True


class MinibatchCKA(Measure):
    """Minibatch CKA, the estimator of torch_cka and Nguyen et al. (2021), not exact CKA.

    Consecutive chunks of ``batch_size`` rows (in the order given; a last, shorter chunk is a
    batch too, as a DataLoader without ``drop_last`` gives) each contribute unbiased linear
    HSIC terms (Song et al. 2012); ``CKA = mean HSIC_xy / sqrt(mean HSIC_xx · mean HSIC_yy)``
    (:class:`~stitchwork.similarity.MinibatchCKAAccumulator`, float64). It estimates debiased
    CKA and depends on ``batch_size``; every chunk needs at least 4 rows.
    """

    name, symmetric = "minibatch_cka", True

    def __call__(self, X: Any, Y: Any, batch_size: int = 256, spatial: str | None = None) -> float:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 4:
            raise SimilarityInputError(f"minibatch_cka batch_size must be an int >= 4, got {batch_size!r}")
        acc = MinibatchCKAAccumulator(spatial)
        for start in range(0, len(X), batch_size):
            acc.update(X[start : start + batch_size], Y[start : start + batch_size])
        return acc.compute()

    def accumulator(self, **options: Any) -> MinibatchCKAAccumulator:
        return MinibatchCKAAccumulator(**options)


class RBFCKA(Measure):
    """CKA with Gaussian kernels (bandwidth ``threshold`` x median distance)."""

    name, symmetric, debiased = "rbf_cka", True, False

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return rbf_cka(X, Y, debiased=self.debiased, **options)


class RBFCKADebiased(RBFCKA):
    """RBF CKA from the unbiased HSIC estimator."""

    name, debiased = "rbf_cka_debiased", True


class CCAMeanRho(Measure):
    """Mean canonical correlation."""

    name, symmetric, canonical, statistic = "cca_mean_rho", True, True, "mean_rho"

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return self.evaluate(X, Y, **options)[0]

    def evaluate(self, X: Any, Y: Any, **options: Any) -> tuple[float, dict[str, Any]]:
        result = cca(X, Y, **options)
        return getattr(result, self.statistic), {"trivial_correlations": result.trivial}


class CCAMeanRhoSq(CCAMeanRho):
    """Mean squared canonical correlation (Yanai's GCD)."""

    name, statistic = "cca_mean_rho_sq", "mean_rho_sq"


class SVCCA(Measure):
    """SVCCA (Raghu et al. 2017): mean canonical correlation after an SVD cut of each side."""

    name, symmetric, canonical = "svcca", True, True

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return self.evaluate(X, Y, **options)[0]

    def evaluate(self, X: Any, Y: Any, **options: Any) -> tuple[float, dict[str, Any]]:
        result = svcca(X, Y, **options)
        return result.mean_rho, {"trivial_correlations": result.trivial}


class PWCCA(Measure):
    """PWCCA (Morcos et al. 2018): correlations weighted by X's projection weights; NOT symmetric."""

    name, symmetric, canonical = "pwcca", False, True

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return self.evaluate(X, Y, **options)[0]

    def evaluate(self, X: Any, Y: Any, **options: Any) -> tuple[float, dict[str, Any]]:
        value, trivial = pwcca_result(X, Y, **options)
        return value, {"trivial_correlations": trivial}


class Procrustes(Measure):
    """Orthogonal Procrustes distance of the normalised, centred representations."""

    name, symmetric, distance, angular = "procrustes", True, True, False

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return procrustes(X, Y, angular=self.angular, **options)


class ProcrustesAngular(Procrustes):
    """Angular Procrustes distance (arccos of the nuclear-norm similarity)."""

    name, angular = "procrustes_angular", True


class RSAPearson(Measure):
    """RSA: Pearson correlation of the two correlation-distance RDMs."""

    name, symmetric, method = "rsa_pearson", True, "pearson"

    def __call__(self, X: Any, Y: Any, **options: Any) -> float:
        return rsa(X, Y, method=self.method, **options)


class RSASpearman(RSAPearson):
    """RSA: Spearman correlation of the two RDMs."""

    name, method = "rsa_spearman", "spearman"


class _Registered(Mapping[str, Measure]):
    """Live view ``name -> measure instance`` of every registered measure class."""

    def __getitem__(self, name: str) -> Measure:
        return _REGISTRY[name]()

    def __iter__(self) -> Iterator[str]:
        return iter(list(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)


#: Every registered measure by name (built from the measure classes, not a list to edit).
MEASURES: Mapping[str, Measure] = _Registered()
#: Names of the built-in distances.
DISTANCES = frozenset(name for name, cls in _REGISTRY.items() if cls.distance)


def get_measure(measure: str | Measure) -> Measure:
    """The measure registered as ``measure`` (or ``measure`` itself); the error lists valid names."""
    if isinstance(measure, Measure):
        return measure
    try:
        return MEASURES[measure]
    except (KeyError, TypeError):
        raise SimilarityInputError(
            f"unknown similarity measure {measure!r}; valid names: {', '.join(sorted(MEASURES))}"
        ) from None
