import os

import pytest

from fmca_rt.atomic import atomic_path, write_atomically
from fmca_rt.errors import CheckpointError, OutputError


def test_success_replaces_the_file_with_ordinary_permissions(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    write_atomically(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "video.mp4"
    target.write_bytes(b"good")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            assert temporary.suffix == ".mp4" and temporary.parent == tmp_path
            temporary.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_unwritable_destinations_are_one_error_of_the_callers_kind(tmp_path):
    with pytest.raises(OutputError, match="folder .* does not exist"):
        write_atomically(tmp_path / "missing" / "x.json", "{}")
    with pytest.raises(CheckpointError, match="it is a folder"):
        write_atomically(tmp_path, b"", CheckpointError)
