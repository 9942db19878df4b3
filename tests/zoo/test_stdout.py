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
    with outliving_its_reader() as guard:
        assert sys.stdout is guard and guard.stream is before and guard.isatty() == before.isatty()
    assert sys.stdout is before
