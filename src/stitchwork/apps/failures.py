"""How a failed app run is shown: a user's error as one paragraph, a bug with its traceback.

User errors are bad config values (:class:`~.validate.UserError`), Hydra's own errors
about the command line (unknown config group, bad override), required values left out
(``???``) and files that are missing, unreadable or cannot be created (``OSError``). The
console gets one paragraph for them; the traceback stays in the job's log file and
``results.json`` (``HYDRA_FULL_ERROR=1`` prints it on the console too). Anything else is a
bug and keeps its traceback on the console.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from hydra.errors import CompactHydraException, InstantiationException
from omegaconf.errors import (
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from .validate import is_user_error

#: Exit code of a run refused for a user error (a bug exits with 1).
USER_ERROR_EXIT = 2


def print_failure(err: BaseException, summarised: bool = False) -> int:
    """Print ``err`` for the console as a user error or a bug; return the exit code.

    ``summarised``: a multirun's closing summary lists every failed job with its error, so a
    user error raised inside a job only gets the hint (its message would show twice).
    """
    message = user_message(err)
    if message is None:
        traceback.print_exception(err)
        return 1
    if summarised and _inside_job(err):
        print(f"{_program()}: error in a job, listed below{_hint(err)}", file=sys.stderr)
    else:
        print(f"{_program()}: error: {message}{_hint(err)}", file=sys.stderr)
    return USER_ERROR_EXIT


def _program() -> str:
    """``stitchwork-<app>`` also when run as ``python -m stitchwork.apps.<app>``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "stitchwork"
    return f"stitchwork-{name[:-3]}" if name.endswith(".py") else name


def _hint(err: BaseException) -> str:
    if _inside_job(err):
        return "\n(The traceback is in the job's log file and results.json; HYDRA_FULL_ERROR=1 prints it here.)"
    return "" if isinstance(err, CompactHydraException) else "\n(HYDRA_FULL_ERROR=1 prints the traceback.)"


def user_message(err: BaseException) -> str | None:
    """The paragraph for a user error, or None when ``err`` is a bug."""
    for cause in _chain(err):
        if is_user_error(cause):
            return str(cause)
        if isinstance(cause, (MissingMandatoryValue, InterpolationToMissingValueError)):
            return _missing_message(cause)
        if isinstance(cause, OSError):
            return _os_message(cause, err)
    if isinstance(err, CompactHydraException) and not _failed_call(err):
        cause = err.__cause__
        extra = f"\n{cause}" if isinstance(cause, OmegaConfBaseException) else ""
        return f"{err}{extra}"
    return None


def log_job_failure(what: str, err: BaseException, error: str, in_sweep: bool = False,
                    logger: logging.Logger | None = None) -> None:  # fmt: skip
    """Log that a job failed (``what: error``), and ``err``'s traceback to the job's log file only.

    A bug's line goes to the console too. A user error's console gets its message once: as
    the paragraph :func:`print_failure` prints after a single run, or (``in_sweep``) in the
    multirun's closing summary; meanwhile the console only notes which job failed.
    """
    logger = logger or logging.getLogger("stitchwork")
    if user_message(err) is None:
        logger.error("%s: %s", what, error)
    else:
        _to_log_files(logger, "%s: %s", (what, error))
        if in_sweep:
            logger.error("%s on a user error (the message is in the closing summary)", what)
    text = "".join(traceback.format_exception(err)).rstrip()
    _to_log_files(logger, "traceback of the failure:\n%s", (text,))


def _to_log_files(logger: logging.Logger, msg: str, args: tuple) -> None:
    """An ERROR record to the file handlers of the root logger only (the job's log file)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, msg, args, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


def _failed_call(err: BaseException) -> bool:
    """An InstantiationException from inside the target's code (a bug unless its cause says else)."""
    return isinstance(err, InstantiationException) and "Error in call to target" in str(err)


def _missing_message(err: OmegaConfBaseException) -> str:
    match = re.search(r"Missing mandatory value: ?(\S+)", str(err))
    key = match[1] if match else (getattr(err, "full_key", None) or "a required value")
    return (f"{key} is required and has no value (it is ??? in the config): "
            f"add {key}=<value> to the command line")  # fmt: skip


def _os_message(err: OSError, outer: BaseException) -> str:
    if err.filename is None:
        return str(err)
    name = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
    if _creating_output_dir(outer):
        return (f"cannot create the job's output folder {name}: {err.strerror}. Give a folder you can "
                f"write to with hydra.run.dir=... (hydra.sweep.dir=... with --multirun)")  # fmt: skip
    return f"{err.strerror or err}: {name}"


def _frames(err: BaseException) -> list[tuple[str, str]]:
    return [(f.filename, f.name) for f in traceback.extract_tb(err.__traceback__)]


def _creating_output_dir(err: BaseException) -> bool:
    """Hydra failed to make the job folder (``run_job`` calling ``mkdir``) before the job ran."""
    frames = _frames(err)
    in_hydra_run_job = any(name == "run_job" and "hydra" in file for file, name in frames)
    return in_hydra_run_job and not _inside_job(err) and any(name == "mkdir" for _, name in frames)


def _inside_job(err: BaseException) -> bool:
    """The error came out of :func:`~.common.run_job` (so it is recorded in the job's folder)."""
    return any(name == "run_job" and file.endswith(("apps/common.py", "apps\\common.py"))
               for file, name in _frames(err))  # fmt: skip
