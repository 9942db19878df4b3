"""Standard output that outlives its reader (zoo.stdout)."""

from __future__ import annotations

import io
import os
import sys

from zoo.stdout import Forgiving, outliving_its_reader


def test_a_closed_pipe_turns_the_rest_of_the_output_into_nothing() -> None:
    read, write = os.pipe()
    stream = io.TextIOWrapper(os.fdopen(write, "wb"), line_buffering=True)
    guard = Forgiving(stream)
    guard.write("seen\n")
    assert os.read(read, 100) == b"seen\n" and not guard.left
    os.close(read)  # the reader leaves
    assert guard.write("lost\n") == 5 and guard.left  # no BrokenPipeError for whoever printed
    guard.write("more\n")
    guard.flush()
    stream.close()  # what was buffered goes to /dev/null, not into an error at exit


def test_stdout_is_put_back_after_the_block() -> None:
    before = sys.stdout
    with outliving_its_reader() as guards:
        guard = sys.stdout
        assert isinstance(guard, Forgiving) and guard.stream is before and guard.isatty() == before.isatty() and not guards.left
    assert sys.stdout is before


def test_a_closed_stream_is_left_alone_and_both_are_guarded(monkeypatch) -> None:
    """`zoo run >&-`: sys.stdout is None, and stays so (a guard around None would fail every print); stderr is guarded too
    (`2>&1 | head`: a plugin's note on stderr meets the closed pipe as well)."""
    monkeypatch.setattr(sys, "stdout", None)
    before = sys.stderr
    with outliving_its_reader() as guards:
        assert sys.stdout is None and isinstance(sys.stderr, Forgiving) and not guards.left
    assert sys.stderr is before


def test_a_worker_of_a_job_leaves_the_status_to_its_parent(monkeypatch) -> None:
    """--nproc: a worker whose reader left exits 0, as its job expects; only the parent process says 141."""
    from contextlib import contextmanager

    import zoo.cli

    class Left:
        left = True

    @contextmanager
    def reader_gone():
        yield Left()

    monkeypatch.setattr(zoo.cli, "outliving_its_reader", reader_gone)
    zoo.cli._train_here(lambda: None, None, worker=True)  # returns: no SystemExit(141)
