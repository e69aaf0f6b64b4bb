"""Run several stitchwork app command lines in ONE Python process, as a user's shell would.

    python tests/cli_batch.py CASES.json RESULTS.json

``CASES.json`` is a list of ``{"app": "train", "args": [...], "cwd": "..."}``. Each case runs
the app's console-script ``main()`` with ``sys.argv`` set, from its own working folder, with
stdout and stderr captured; ``RESULTS.json`` gets ``{"code": exit code, "output": text}``
per case. One process saves the seconds of importing torch and Lightning for every
command (a test of bad inputs runs dozens of them); each run still composes its config,
sets up logging and fails exactly as it would alone.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback


def run_case(app: str, args: list[str], cwd: str) -> dict:
    """Run ``stitchwork-<app> *args`` in ``cwd``; the exit code and everything it printed."""
    out = io.StringIO()
    main = importlib.import_module(f"stitchwork.apps.{app}").main
    here = os.getcwd()
    os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)
    sys.argv = [f"stitchwork-{app}", *args]
    code: int | str = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - what a shell would show: the traceback, exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
    return {"code": code, "output": out.getvalue()}


def main(cases_path: str, results_path: str) -> None:
    with open(cases_path) as f:
        cases = json.load(f)
    results = [run_case(c["app"], c["args"], c["cwd"]) for c in cases]
    with open(results_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
