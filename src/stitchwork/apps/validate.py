"""Checks of the config where the apps read it, naming the key the user typed.

Reusable checks of one value (positive finite, integer, probability, choice, ...), each
raising :class:`UserError` with the key the user typed and what is valid
(``matching.lr must be a positive finite number, got nan``), and :data:`RULES`: what a
parameter of a given name means everywhere in stitchwork. :mod:`.config_check` applies them
to a whole config; the entry point prints a UserError as one paragraph, no traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from omegaconf import DictConfig

from ..training.recipe import OPTIMIZERS, SCHEDULES

E = TypeVar("E", bound=BaseException)
SPLITS = ("train", "val", "test")


class UserError(ValueError):
    """A value the user gave that cannot work: printed as one paragraph, no traceback."""


def as_user_error(err: E) -> E:
    """Mark ``err`` as the user's (shown as one paragraph), keeping its type and message."""
    err.user_error = True  # type: ignore[attr-defined]
    return err


def is_user_error(err: BaseException) -> bool:
    """A :class:`UserError`, or an exception marked by :func:`as_user_error`."""
    return isinstance(err, UserError) or getattr(err, "user_error", False) is True


@contextmanager
def user_errors() -> Iterator[None]:
    """Mark ``ValueError``/``TypeError``/``LookupError`` raised in this block as the user's.

    For blocks that only check settings (the library's ``check_*`` functions): what they
    refuse is a bad value, not a bug. The exception keeps its type and message.
    """
    try:
        yield
    except (ValueError, TypeError, LookupError) as err:
        as_user_error(err)
        raise


@contextmanager
def constructor_errors(node: Any, fallback_key: str) -> Iterator[None]:
    """Around ``instantiate(node)``: a ValueError of the constructor names ``node``'s key.

    Constructors check their own arguments (``width must be positive, got -1``); the message
    becomes ``model_a.width must be positive, got -1``. Other errors pass unchanged.
    """
    key = (node._get_full_key(None) if isinstance(node, DictConfig) else "") or fallback_key
    try:
        yield
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from err
        if not isinstance(cause, ValueError):
            raise
        message = str(cause)
        first = message.split(" ", 1)[0]
        named = isinstance(node, DictConfig) and first in node
        raise UserError(f"{key}.{message}" if named else f"{key}: {message}") from err


# -- single-value checks: each raises UserError naming `key` ---------------------------------


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fail(key: str, what: str, value: Any) -> None:
    """Raise the UserError `<key> must be <what>, got <value>`."""
    raise UserError(f"{key} must be {what}, got {value!r}")


def finite(key: str, value: Any) -> float:
    """A finite number (an ``int`` or ``float``, not NaN or infinite)."""
    if not (is_number(value) and math.isfinite(value)):
        fail(key, "a finite number", value)
    return value


def positive_finite(key: str, value: Any) -> float:
    """A finite number > 0 (learning rates, temperatures, widths)."""
    if not (is_number(value) and math.isfinite(value) and value > 0):
        fail(key, "a positive finite number", value)
    return value


def nonnegative_finite(key: str, value: Any) -> float:
    """A finite number >= 0 (weight decay, ridge, penalties, tolerances)."""
    if not (is_number(value) and math.isfinite(value) and value >= 0):
        fail(key, "a finite number >= 0", value)
    return value


def probability(key: str, value: Any) -> float:
    """A number in [0, 1]."""
    if not (is_number(value) and 0 <= value <= 1):
        fail(key, "a number in [0, 1]", value)
    return value


def integer(key: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """An ``int`` (not a bool, not a float) within ``[minimum, maximum]`` where given."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f" in [{minimum}, {maximum}]" if minimum is not None and maximum is not None
                  else f" >= {minimum}" if minimum is not None else f" <= {maximum}" if maximum is not None else "")
        fail(key, f"an integer{bounds}", value)
    return value


def optional(check: Callable[..., Any]) -> Callable[..., Any]:
    """``check`` that also accepts ``None`` (null)."""

    def check_or_none(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return check_or_none


def choice(choices: Sequence[str]) -> Callable[[str, Any], str]:
    """A check accepting one of ``choices``."""

    def check_choice(key: str, value: Any) -> str:
        if value not in choices:
            fail(key, f"one of {', '.join(map(str, choices))}", value)
        return value

    return check_choice


def each(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """A check of a list, applying ``check`` to every item (keys ``name[i]``)."""

    def check_list(key: str, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            fail(key, "a list", value)
        for i, item in enumerate(value):
            check(f"{key}[{i}]", item)
        return value

    return check_list


def positive_int(key: str, value: Any) -> int:
    return integer(key, value, minimum=1)


def seed(key: str, value: Any) -> int:
    """Seeds are integers in [0, 2**32 - 1] (Lightning silently replaces others by 0)."""
    return integer(key, value, 0, 2**32 - 1)


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        fail(key, "true or false", value)
    return value


def train_subset(key: str, value: Any) -> Any:
    """null (all), a count >= 1, or a fraction in (0, 1]."""
    if value is None or (isinstance(value, float) and 0 < value <= 1):
        return value
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        fail(key, "null, a count >= 1 or a fraction in (0, 1]", value)
    return value


def val_size(key: str, value: Any) -> Any:
    """A count >= 0 or a fraction in [0, 1)."""
    if isinstance(value, float) and 0 <= value < 1:
        return value
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        fail(key, "a count >= 0 or a fraction in [0, 1)", value)
    return value


def _post_choices() -> tuple[str, ...]:
    """The post-processes a config can name: the files of ``conf/rebasin/post/`` (built-ins first)."""
    from ..rebasin.post import POST_PROCESSES
    from .config import conf_dir

    names = {p.stem for p in (conf_dir() / "rebasin" / "post").glob("*.yaml")}
    return (*(n for n in POST_PROCESSES if n in names), *sorted(names - set(POST_PROCESSES)))


def _norm_choices() -> tuple[str, ...]:
    from ..models.norm import NORMS

    return tuple(NORMS)


def existing_file(key: str, value: Any) -> Any:
    """null or the path of a file that exists."""
    from pathlib import Path

    if value is not None and not (isinstance(value, str) and Path(value).expanduser().is_file()):
        fail(key, "the path of an existing file", value)
    return value


def _lazy_choice(choices: Callable[[], Sequence[str]]) -> Callable[[str, Any], str]:
    return lambda key, value: choice(choices())(key, value)


#: What a parameter of this name means wherever it appears in a config (any group, any
#: method): a new method whose option is called ``lr`` or ``epochs`` is checked for free.
RULES: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(("lr", "temperature", "width", "max_moment_gib", "init_std"), positive_finite),
    # a recipe of 0 epochs uses a model as loaded (recipe=pretrained); a stitch trains >= 1
    "epochs": lambda key, value: integer(key, value, minimum=0 if key.split(".")[0].startswith("recipe") else 1),
    **dict.fromkeys(("batch_size", "depth", "rank", "steps", "k", "n_subset", "max_sweeps",
                     "restarts", "num_channels", "image_size", "num_samples"), positive_int),
    **dict.fromkeys(("num_workers", "examples"), lambda key, value: integer(key, value, minimum=0)),
    "num_points": lambda key, value: integer(key, value, minimum=2),
    **dict.fromkeys(("weight_decay", "ridge", "l1_lambda", "sparsity_tol", "momentum", "warmup_epochs", "eps",
                     "decay", "label_smoothing"), nonnegative_finite),
    **dict.fromkeys(("post_batches", "max_batches", "chunk_size"), optional(positive_int)),
    **dict.fromkeys(("merge_lam", "lam"), finite),
    **dict.fromkeys(("force", "resize", "random_a", "download", "nesterov", "print_config"), boolean),
    "p": probability,
    "qs": each(probability),
    "split": choice(SPLITS),
    "splits": each(choice(SPLITS)),
    "optimizer": choice(OPTIMIZERS),
    "schedule": choice(SCHEDULES),
    **dict.fromkeys(("post", "merge"), _lazy_choice(_post_choices)),
    "norm": _lazy_choice(_norm_choices),
    "on_corrupt": choice(("retrain", "error")),
    **dict.fromkeys(("path", "weights_path"), existing_file),
    "train_subset": train_subset,
    "val_size": val_size,
}


def rule_for(name: str) -> Callable[[str, Any], Any] | None:
    """The check :data:`RULES` gives parameter ``name`` (seeds: ``seed``, ``seed_*``, ``*_seed``)."""
    if name == "seed" or name.startswith("seed_") or name.endswith("_seed"):
        return seed
    return RULES.get(name)
