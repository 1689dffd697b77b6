"""Where a command will write, checked before any work: never over an input, the model or another output,
and only where writing can succeed.

    outputs = OutputPaths(inputs=image_paths, model=args.model)
    outputs.file("--json", args.json)
    outputs.folder("--explain", args.explain, names=r"_face\\d+\\.png$")   # the files it may get
    outputs.check()   # OutputError: one sentence naming the clash, or why a path cannot be written

Paths are compared after resolving symbolic links, and existing files by identity (so a hard link to the
model counts as the model). A folder output clashes with a protected file inside it only when that file's
name is one the folder may get. Writability is tried, not guessed from permission bits (which root
ignores): a temporary file is created and removed in the folder, or in the nearest existing folder above a
folder the writer will create; a file system with no free block is refused too.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .atomic import describe_os_error
from .errors import FMCAError, OutputError


@dataclass(frozen=True)
class _Output:
    option: str
    path: Path
    names: re.Pattern | None  # set for a folder: the names of the files it may get


def incomplete_name(path: str | os.PathLike) -> Path:
    """Where a run that did not finish writes what it has, beside the file a complete run would replace:
    results.json -> results.incomplete.json."""
    path = Path(path)
    return path.with_name(f"{path.stem}.incomplete{path.suffix}")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _resolved(path: Path) -> str:
    return os.path.realpath(path)


def _nearest_existing(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def writing_problem(path: str | os.PathLike, is_folder: bool = False) -> str | None:
    """Why `path` (a file, or a folder a writer creates or fills) cannot be written; None when it can."""
    path = Path(path)
    if not is_folder and path.is_dir():
        return "it is a folder"
    if is_folder and path.exists() and not path.is_dir():
        return "it is a file, not a folder"
    folder = _nearest_existing(path if is_folder else path.parent)
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        handle, name = tempfile.mkstemp(prefix=".fmca-rt-check.", dir=folder)
        os.close(handle)
        os.unlink(name)
        free = os.statvfs(folder)
    except OSError as error:
        return describe_os_error(error)
    if free.f_bavail == 0 and free.f_blocks > 0:
        return "no space left on the device"
    return None


class _PathIndex:
    """Paths by identity (existing files) and by resolved name, each with what it is."""

    def __init__(self, entries=()):
        self._by_identity: dict[tuple[int, int], tuple[str, Path]] = {}
        self._by_name: dict[str, tuple[str, Path]] = {}
        for what, path in entries:
            self.add(what, path)

    def add(self, what: str, path: Path) -> None:
        identity = _identity(path)
        if identity is not None:
            self._by_identity.setdefault(identity, (what, path))
        self._by_name.setdefault(_resolved(path), (what, path))

    def find(self, path: Path) -> tuple[str, Path] | None:
        identity = _identity(path)
        return (identity is not None and self._by_identity.get(identity)) or self._by_name.get(_resolved(path))


class OutputPaths:
    """The outputs of one command run, checked together against its inputs, its model and each other."""

    def __init__(self, inputs=(), model: str | os.PathLike | None = None,
                 error_type: type[FMCAError] = OutputError):
        self._protected: list[tuple[str, Path]] = [("an input", Path(p)) for p in inputs]
        if model is not None:
            self._protected.append(("the model", Path(model)))
        self._outputs: list[_Output] = []
        self._error_type = error_type

    def file(self, option: str, path: str | os.PathLike | None) -> None:
        if path is not None:
            self._outputs.append(_Output(option, Path(path), None))

    def folder(self, option: str, path: str | os.PathLike | None, names: str) -> None:
        if path is not None:
            self._outputs.append(_Output(option, Path(path), re.compile(names)))

    def check(self) -> None:
        """OutputError (or the error type given) for the first clash or unwritable output."""
        protected, earlier = _PathIndex(self._protected), _PathIndex()
        files = [o for o in self._outputs if o.names is None]
        for output in files:
            if hit := protected.find(output.path):
                raise self._error_type(f"{output.option} {output.path} would write over {hit[0]} ({hit[1]}); "
                                       "choose another name.")
            if hit := earlier.find(output.path):
                raise self._error_type(f"{hit[0]} and {output.option} both name {output.path}; give each output "
                                       "its own file.")
            earlier.add(output.option, output.path)
        guarded = self._protected + [(o.option, o.path) for o in files]
        for output in self._outputs:
            if output.names is not None:
                self._check_folder(output, guarded)
        for output in self._outputs:
            problem = writing_problem(output.path, is_folder=output.names is not None)
            if problem:
                raise self._error_type(f"Cannot write {output.option} {output.path}: {problem}.")

    def _check_folder(self, output: _Output, guarded: list[tuple[str, Path]]) -> None:
        folder = _resolved(output.path)
        for what, path in guarded:
            if _resolved(path.parent) == folder and output.names.search(path.name):
                owner = f"the {what} output" if what.startswith("--") else what
                raise self._error_type(f"{output.option} {output.path} may write a file named {path.name}, "
                                       f"over {owner} ({path}); choose another folder.")
