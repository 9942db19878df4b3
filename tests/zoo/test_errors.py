"""A message tells a CLI user the flag and a Python user the keyword; an interruption carries the run it stopped."""

from __future__ import annotations

from pathlib import Path

from zoo.errors import Interrupted, option, resume_it, set_it, speaking_to_the_command_line, spoken


def test_a_how_to_is_said_in_the_callers_words() -> None:
    said = lambda: (option("--data-dir"), option("--init", "runs/a"), option("--index", 3), set_it("optimizer.lr=0.1"),  # noqa: E731
                    resume_it("runs/a"), resume_it("runs/a", 2), spoken("cli", "python"))
    assert said() == ("data_dir=", "init='runs/a'", "index=3", "sets=['optimizer.lr=0.1']", "zoo.run(resume='runs/a')",
                      "zoo.run_processes(2, resume='runs/a')", "python")
    with speaking_to_the_command_line():
        assert said() == ("--data-dir", "--init runs/a", "--index 3", "--set optimizer.lr=0.1", "`zoo run --resume runs/a`",
                          "`zoo run --resume runs/a --nproc 2`", "cli")
    assert said()[-1] == "python"  # only inside the command


def test_an_interruption_carries_the_run_it_stopped() -> None:
    stopped = Interrupted("Interrupted (Ctrl-C) after epoch 1.", run_dir=Path("runs/a"))
    assert stopped.run_dir == Path("runs/a") and stopped.exit_code == 130 and Interrupted("x").run_dir is None
