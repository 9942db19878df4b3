"""Standard output that outlives its reader (zoo.stdout)."""

from __future__ import annotations

import io
import os
import sys

from zoo.stdout import Forgiving, outliving_its_reader, reader_left, to_null


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


def test_a_rank_of_a_job_leaves_the_status_to_its_launcher(monkeypatch, tmp_path) -> None:
    """A plain `zoo run | head` exits 141; a rank of a torchrun job (by hand, or a worker of --nproc) exits 0, as its job
    expects: 141 would fail the job. The end to end check: test_distributed's ..._piped_into_head."""
    from contextlib import contextmanager

    import pytest

    import zoo.cli

    class Left:
        left = True

    @contextmanager
    def reader_gone():
        yield Left()

    class Result:
        run_dir = tmp_path

    monkeypatch.setattr(zoo.cli, "outliving_its_reader", reader_gone)
    with pytest.raises(SystemExit) as stopped:
        zoo.cli._train_here(Result, None)
    assert stopped.value.code == 141
    zoo.cli._train_here(Result, None, worker=True)  # returns: no SystemExit(141)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    zoo.cli._train_here(Result, None)


def test_reader_left_tells_a_pipe_whose_reader_has_gone_without_writing(tmp_path) -> None:
    read, write = os.pipe()
    with os.fdopen(write, "w") as stream:
        assert not reader_left(stream)
        os.close(read)
        assert reader_left(stream)
    with open(tmp_path / "a-file", "w") as stream:
        assert not reader_left(stream)
    assert not reader_left(io.StringIO())  # no descriptor: nothing to tell


def test_to_null_leaves_no_descriptor_open(tmp_path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with open(tmp_path / "out", "w") as stream:
        for _ in range(5):
            to_null(stream)
        stream.write("gone")
        assert len(os.listdir("/proc/self/fd")) == before + 1  # the file itself
    assert (tmp_path / "out").read_text() == ""
