"""One owner per run directory while it trains: an advisory lock (flock) on RUN_DIR/.lock.

The kernel releases a flock when its process exits, however it exits (SIGKILL, a power cut ends
everything anyway), so a lock is never stale after a crash and there is nothing to clean up. The
file also holds who took the lock (pid, host, when, command line), for the message a second process
gets. The file is never deleted: deleting a lock file lets two processes lock two different files.

Limits: flock is per open file, so one process cannot nest two `hold`s on the same directory; a
child forked while the lock is held keeps it until that child exits too; on some network file
systems flock is local to each machine.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from .errors import ZooError

LOCK = ".lock"
#: More than any holder record; what a damaged lock file holds beyond this is ignored.
RECORD_LIMIT = 64 * 1024
#: How long `hold` waits when the lock is taken but no holder is recorded (a probe, or an owner starting).
PROBE_GRACE = 1.0


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory."""

    pid: int
    host: str
    started: str
    """Local time the lock was taken, ISO 8601 to the second."""
    command: str

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started}: {self.command}"


@contextmanager
def hold(run_dir: Path, leaderboard: bool = False) -> Iterator[Holder]:
    """Own `run_dir` (or a leaderboard's folder) for the duration of the block, or raise ZooError naming the live
    process that does. Released on any exit from the block, and by the kernel if this process dies."""
    descriptor = _open(run_dir, create=True)
    try:
        _lock(descriptor, run_dir, leaderboard)
        me = Holder(os.getpid(), socket.gethostname(), datetime.now().isoformat(timespec="seconds"), shlex.join(sys.argv))
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(asdict(me)) + "\n").encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(descriptor, 0)  # no record of a holder that has gone
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _lock(descriptor: int, run_dir: Path, leaderboard: bool = False) -> None:
    """Take the lock, waiting out `holder()` probes (which hold it shared for microseconds), not owners."""
    deadline = time.monotonic() + PROBE_GRACE
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            owner = _read(descriptor)
            if owner is not None or time.monotonic() > deadline:
                raise _in_use(run_dir, owner, leaderboard) from None
            time.sleep(0.02)


def holder(run_dir: Path) -> Holder | None:
    """The live process holding `run_dir`, or None when no process does (the directory is not changed)."""
    try:
        descriptor = _open(run_dir, create=False)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(descriptor) or Holder(0, "?", "?", "?")
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _open(run_dir: Path, create: bool) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        return os.open(run_dir / LOCK, flags, 0o644)
    except FileNotFoundError:
        if create:
            raise ZooError(f"Cannot lock {run_dir}: it does not exist.") from None
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ZooError(f"{run_dir / LOCK} is a symbolic link; zoo's lock file must be a plain file. Delete it.") from None
        raise ZooError(f"Cannot lock {run_dir} ({run_dir / LOCK}): {error.strerror or error}.") from None


def _read(descriptor: int) -> Holder | None:
    """The holder record in the lock file, or None if it is empty or damaged (being written, say)."""
    try:
        record = json.loads(os.pread(descriptor, RECORD_LIMIT, 0).decode("utf-8"))
        return Holder(int(record["pid"]), str(record["host"]), str(record["started"]), str(record["command"]))
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _in_use(run_dir: Path, holder: Holder | None, leaderboard: bool = False) -> ZooError:
    who = holder.describe() if holder else "another process (it has not yet written who it is)"
    if leaderboard:
        return ZooError(f"The leaderboard folder {run_dir} is in use by {who}. Two leaderboards in one folder would train each cell twice "
                        f"and overwrite each other's table: wait for that one to finish, or stop it (run again, it goes on where it stopped).")
    return ZooError(
        f"The run directory {run_dir} is in use by {who}. Two processes on one run would overwrite each other's "
        f"checkpoints and metrics: wait for that one to finish, or stop it (a stopped run can be resumed)."
    )
