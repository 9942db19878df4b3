"""zoo.runlock with real processes: a second process is refused with the holder's pid, host, start
time and command; the lock goes with its process, however it ends, so it is never stale."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.runlock import LOCK, hold, holder

#: Holds the run directory given as argv[1], says so, then waits for a line on stdin (or to be killed).
HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from zoo.runlock import hold
    with hold(Path(sys.argv[1])) as me:
        print("held", me.pid, flush=True)
        if sys.stdin.readline().strip() == "crash":
            raise RuntimeError("crash inside the block")
    print("released", flush=True)
""")


def start_holder(run_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), "--marker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.split() == ["held", str(process.pid)], process.stderr.read() if process.stderr else line
    return process


def try_in_another_process(run_dir: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pathlib import Path; from zoo.runlock import hold\nwith hold(Path(sys.argv[1])): print('got it')"
    return subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=60)


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = start_holder(tmp_path)
    try:
        second = try_in_another_process(tmp_path)
        assert second.returncode != 0 and "got it" not in second.stdout
        assert "ZooError" in second.stderr and f"in use by process {first.pid} on {socket.gethostname()}" in second.stderr
        assert "--marker" in second.stderr  # the holder's command line
        with pytest.raises(ZooError, match=rf"{tmp_path} is in use by process {first.pid} .*started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d: "):
            with hold(tmp_path):
                pass
        found = holder(tmp_path)
        assert found is not None and found.pid == first.pid and found.host == socket.gethostname()
    finally:
        first.communicate("\n", timeout=60)
    assert first.returncode == 0 and first.stdout is not None
    assert holder(tmp_path) is None
    assert try_in_another_process(tmp_path).stdout.strip() == "got it"


@pytest.mark.parametrize("how", ["sigkill", "exception"])
def test_the_lock_goes_with_its_process_and_is_never_stale(how: str, tmp_path: Path) -> None:
    first = start_holder(tmp_path)
    if how == "sigkill":
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        assert first.returncode == -signal.SIGKILL
    else:
        _, errors = first.communicate("crash\n", timeout=60)
        assert first.returncode == 1 and "crash inside the block" in errors
    assert (tmp_path / LOCK).is_file()  # the file stays; the lock does not
    assert holder(tmp_path) is None
    with hold(tmp_path) as me:
        assert me.pid == os.getpid()
        assert holder(tmp_path) == me  # flock is per open file: even this process sees itself as the holder


def test_released_on_an_exception_in_this_process(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with hold(tmp_path):
            raise KeyError("boom")
    second = try_in_another_process(tmp_path)
    assert second.returncode == 0 and second.stdout.strip() == "got it"


def test_a_missing_directory_or_a_linked_lock_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="it does not exist"):
        with hold(tmp_path / "nope"):
            pass
    (tmp_path / LOCK).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ZooError, match="is a symbolic link"):
        with hold(tmp_path):
            pass
    assert not (tmp_path / "elsewhere").exists()
