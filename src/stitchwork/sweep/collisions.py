"""Sweeps whose jobs collapse to one identity: found before anything runs, explained in words."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def colliding_jobs(jobs: Sequence[tuple[Sequence[str], str]]) -> dict[str, list[list[str]]]:
    """Identities that more than one job of a sweep maps to, with those jobs' overrides.

    ``jobs`` holds, per expanded job, its override strings (``key=value``) and its job id.
    """
    by_identity: dict[str, list[list[str]]] = defaultdict(list)
    for overrides, identity in jobs:
        by_identity[identity].append(list(overrides))
    return {identity: group for identity, group in by_identity.items() if len(group) > 1}


def differing_keys(override_lists: Sequence[Sequence[str]]) -> list[str]:
    """The override keys whose values differ between jobs (in first-seen order)."""
    values: dict[str, set[str]] = {}
    for overrides in override_lists:
        for item in overrides:
            key, _, value = item.partition("=")
            values.setdefault(key, set()).add(value)
    present = [set(o.partition("=")[0] for o in overrides) for overrides in override_lists]
    return [k for k, v in values.items() if len(v) > 1 or any(k not in p for p in present)]


def collision_message(
    collisions: dict[str, list[list[str]]], n_jobs: int, n_identities: int, outside: Sequence[str]
) -> str:
    """One paragraph: which overrides name the same job, and why they are the same job."""
    lines = [f"Refusing this sweep: its {n_jobs} jobs have only {n_identities} distinct job "
             f"identit{'y' if n_identities == 1 else 'ies'}, so jobs would share a results folder "
             "(run twice into it, or be skipped as done)."]
    for identity, group in list(collisions.items())[:5]:
        keys = differing_keys(group)
        jobs = " and ".join("[" + " ".join(o for o in overrides if o.partition("=")[0] in keys) + "]"
                            for overrides in group[:4])
        lines.append(f"  job {identity}: {jobs}{' and more' if len(group) > 4 else ''} are the same job: "
                     f"{', '.join(keys) or 'no key'} does not enter the job identity.")
    if len(collisions) > 5:
        lines.append(f"  ... and {len(collisions) - 5} more identities")
    lines.append(f"Keys outside every job identity: {', '.join(sorted(outside))}; a setting that a job "
                 "does not read (e.g. matching_overrides for another method) does not enter it either. "
                 "Sweep only keys that change the result, or run the variants as separate sweeps.")
    return "\n".join(lines)
