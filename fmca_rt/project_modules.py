"""Importing the project's other top-level packages (training, export) from the runtime, with errors that name
the real cause.

Python looks in the working folder (and PYTHONPATH) before the installation, so a user's own `training.py`
or `export/` folder there hides the package of the same name, and the import then fails in a way that reads
like a missing dependency. The location each package was installed at is beside `fmca_rt` itself; anything
found elsewhere is named as the culprit. A dependency that really is missing is named with the extra that
installs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .errors import DependencyError

INSTALL_ROOT = Path(__file__).resolve().parent.parent  # where training/, export/ and kernels/ were installed


def shadowing_location(package: str) -> Path | None:
    """The file or folder that Python would import as `package` instead of the installed one, if any."""
    module = sys.modules.get(package)
    if module is not None:
        found = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
    else:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        found = spec.origin if spec.origin not in (None, "namespace") else \
            next(iter(spec.submodule_search_locations or []), None)
    if found is None:
        return None
    found = Path(found).resolve()
    return None if found.is_relative_to(INSTALL_ROOT / package) else found


def import_project_module(name: str, extra: str) -> ModuleType:
    """Import e.g. "training.model"; DependencyError naming a shadowing file or the extra that is missing."""
    package = name.split(".")[0]
    shadow = shadowing_location(package)
    if shadow is not None:
        raise DependencyError(f"{shadow} hides fmca-rt's {package!r} package (Python finds it first, in the "
                              "working folder or on PYTHONPATH); rename it or run from another folder.")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = (error.name or package).split(".")[0]
        if missing == package:
            raise DependencyError(f"fmca-rt's {package!r} package is not installed; reinstall fmca-rt.") from None
        raise DependencyError(f"This needs {missing!r}, which is not installed: pip install 'fmca-rt[{extra}]'.") \
            from None
