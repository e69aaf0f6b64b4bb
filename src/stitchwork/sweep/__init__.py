"""Job records (results.json), identity hashes, skip-if-done, and sweep reports."""

from .records import (
    RESULTS_FILE,
    JobRecord,
    ResultsError,
    is_done,
    read_results,
    write_results,
)
from .report import collect_results, flatten, write_jsonl, write_table

__all__ = [
    "RESULTS_FILE",
    "JobRecord",
    "ResultsError",
    "collect_results",
    "flatten",
    "is_done",
    "read_results",
    "write_results",
    "write_jsonl",
    "write_table",
]
