"""Packages a test needs beside the environment (another Triton release, say), fetched once with pip into a
cache folder and put first on a child process's path; nothing is installed into the running environment.

The cache is $FMCA_TEST_CACHE/fmca-rt/packages, or $XDG_CACHE_HOME/... (default ~/.cache/...), one folder per
requirement.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("FMCA_TEST_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fmca-rt" / "packages"


def cached_target(requirement: str) -> tuple[Path | None, str]:
    """(folder holding `requirement`'s files, "") once fetched, or (None, why not) when pip could not get it."""
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    folder = cache_root() / f"{re.sub(r'[^A-Za-z0-9.]+', '_', requirement)}-{python_tag}"
    if (folder / ".complete").exists():
        return folder, ""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
                                 "--disable-pip-version-check", "--target", str(partial), requirement],
                                capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"pip could not fetch {requirement}: {error}"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return None, f"pip could not fetch {requirement}: {lines[-1] if lines else 'no output'}"
    (partial / ".complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder, ""


def child_env(*folders: Path, **extra: str) -> dict:
    """This process's environment with `folders` first on PYTHONPATH, then the repository."""
    repository = str(Path(__file__).resolve().parents[1])
    path = [str(f) for f in folders] + [repository] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}
