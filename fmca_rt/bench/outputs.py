"""A benchmark's tables: printed first, then saved (--json, --markdown) atomically, so that a failed write
costs the files, never the numbers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..atomic import write_atomically
from ..errors import FMCAError, OutputError


def print_and_save(result: dict, text: str, json_path: str | Path | None, markdown_path: str | Path | None,
                   what: str = "The tables above were") -> int:
    """Print `text`, then write the files asked for; exit status 1 with one sentence when a write fails."""
    print(text)
    try:
        if json_path:
            write_atomically(json_path, json.dumps(result, indent=2, default=str) + "\n")
        if markdown_path:
            write_atomically(markdown_path, text + "\n")
    except OutputError as error:
        print(f"fmca-rt: error: {error} {what} not saved.", file=sys.stderr)
        return 1
    return 0


def measure_and_save(measure: Callable[[], dict], render: Callable[[dict], str], json_path: str | Path | None,
                     markdown_path: str | Path | None) -> int:
    """A benchmark command's end: run `measure`, then print and save its tables; a failure the user can act on
    (FMCAError) is one sentence and exit status 2."""
    try:
        result = measure()
    except FMCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return print_and_save(result, render(result), json_path, markdown_path)
