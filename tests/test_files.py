"""minigpt.files: a file written through atomic_write is the old one or the whole new one, whatever stops the writer (an
error, a Ctrl-C, kill -9 at its fault point), and no temporary is left but by a kill; sha256_of reads in chunks."""

import hashlib
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.files import atomic_write, sha256_of, temporary


@given(old=st.binary(max_size=64), new=st.binary(max_size=3 << 20), binary=st.booleans())
@settings(max_examples=25)
def test_a_whole_write_replaces_the_file_and_leaves_no_temporary(tmp_path_factory, old, new, binary):
    path = tmp_path_factory.mktemp("atomic") / "file"
    path.write_bytes(old)
    with atomic_write(path, "wb" if binary else "w") as f:
        f.write(new if binary else new.hex())
    assert path.read_bytes() == (new if binary else new.hex().encode())
    assert sorted(p.name for p in path.parent.iterdir()) == ["file"]
    assert sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()  # several 1 MB chunks for the large ones


@pytest.mark.parametrize("stop", [OSError("No space left on device"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_write_stopped_halfway_leaves_the_old_file_and_no_temporary(tmp_path, stop):
    path = tmp_path / "file"
    path.write_text("the old text")
    with pytest.raises(type(stop)):
        with atomic_write(path) as f:
            f.write("half of the new")
            f.flush()
            assert temporary(path).read_text() == "half of the new"  # written beside the file, not into it
            raise stop
    assert path.read_text() == "the old text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_new_file_stopped_halfway_is_not_there(tmp_path):
    with pytest.raises(OSError):
        with atomic_write(tmp_path / "new") as f:
            f.write("x")
            raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


KILLED = """
import sys
from minigpt.files import atomic_write
with atomic_write(sys.argv[1], point="test.before_rename") as f:
    f.write("the new text")
"""


def test_a_kill_before_the_rename_leaves_the_old_file_and_the_whole_temporary(tmp_path):
    path = tmp_path / "file"
    path.write_text("the old text")
    env = {**os.environ, "MINIGPT_FAULT": "test.before_rename", "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED, str(path)], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert path.read_text() == "the old text"
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0].name  # what a run directory's start-up removes
    assert leftovers[0].read_text() == "the new text"  # flushed and fsynced before the rename: complete on disk
    ran = subprocess.run([sys.executable, "-c", KILLED, str(path)], capture_output=True, text=True,
                         env={**env, "MINIGPT_FAULT": ""})
    assert ran.returncode == 0 and path.read_text() == "the new text"
