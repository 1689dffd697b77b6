"""Writing files so that a failure or an interrupt never leaves a half-written file in place of a good one.

Everything is written under a temporary name beside its destination (same folder, so the final rename is
atomic) and renamed over the destination only once complete. The temporary name keeps the destination's
suffix, for writers that choose a format by it (OpenCV's VideoWriter). An operating-system failure while
writing (a full disk, a read-only file system) becomes one error of the caller's kind.

Two runs writing the same file at once each write a whole file; `commit_unless_changed`
notices that the destination changed since `baseline` was taken (another run wrote it) and keeps both:
this run's file goes beside it under a free name, which it returns.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import FMCAError, OutputError


@functools.cache
def _new_file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's own 0o600 is for secrets."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def describe_os_error(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def temporary_beside(path: str | os.PathLike, error_type: type[FMCAError] = OutputError) -> Path:
    """Create an empty temporary file next to `path`; a destination that cannot be written is one error."""
    path = Path(path)
    if path.is_dir():
        raise error_type(f"Cannot write {path}: it is a folder.")
    if path.parent.exists() and not path.parent.is_dir():
        raise error_type(f"Cannot write {path}: {path.parent} is a file, not a folder.")
    if not path.parent.is_dir():
        raise error_type(f"Cannot write {path}: folder {path.parent} does not exist.")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    except OSError as error:
        raise error_type(f"Cannot write {path}: {describe_os_error(error)}.") from None
    os.close(handle)
    return Path(name)


def file_state(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """What identifies a file's current content cheaply (inode, size, modification time); None if absent."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _free_name(path: Path) -> Path:
    number = 2
    while (candidate := path.with_name(f"{path.stem}-{number}{path.suffix}")).exists():
        number += 1
    return candidate


def commit(temporary: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move a completed temporary file over its destination, with ordinary file permissions."""
    os.chmod(temporary, _new_file_mode())
    os.replace(temporary, path)
    return Path(path)


def commit_unless_changed(temporary: str | os.PathLike, path: str | os.PathLike,
                          baseline: tuple[int, int, int] | None) -> Path:
    """commit(), unless the destination changed since `baseline` (file_state(path) taken when the run
    began: another run wrote it meanwhile); then this file goes beside it under a free name
    (`results-2.json`). Returns where the file went. Checked just before the rename."""
    path = Path(path)
    return commit(temporary, path if file_state(path) == baseline else _free_name(path))


@contextmanager
def atomic_path(path: str | os.PathLike, error_type: type[FMCAError] = OutputError) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on any failure it is removed."""
    temporary = temporary_beside(path, error_type)
    try:
        yield temporary
        commit(temporary, path)
    except OSError as error:
        raise error_type(f"Cannot write {path}: {describe_os_error(error)}.") from None
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike, data: bytes | str,
                     error_type: type[FMCAError] = OutputError) -> Path:
    with atomic_path(path, error_type) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data.encode() if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)
