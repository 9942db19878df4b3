"""The collector around a `zoo` process (zoo.gcpause): off while a run starts, back on (without what start-up
made) once the run is built, frozen at exit; left alone where zoo did not turn it off."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import tiny_sets

import zoo
from zoo import gcpause


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gcpause._paused = False
    gc.unfreeze()
    (gc.enable if was_enabled else gc.disable)()


def test_pause_then_resume_freezes_what_exists_and_collects_again() -> None:
    gc.unfreeze()
    gcpause.pause()
    assert not gc.isenabled()
    gcpause.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    gcpause.resume()  # a second resume (a second run in one process) changes nothing
    assert gc.get_freeze_count() == frozen


def test_a_collector_turned_off_by_the_program_stays_off() -> None:
    gc.disable()
    gcpause.pause()
    gcpause.resume()
    assert not gc.isenabled()
    gcpause.exiting()
    assert not gc.isenabled()


def test_exiting_freezes_and_turns_a_paused_collector_back_on() -> None:
    gc.unfreeze()
    gcpause.pause()
    gcpause.exiting()
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_a_run_turns_the_paused_collector_back_on_once_built(tiny_data: Path, tmp_path: Path) -> None:
    gcpause.pause()
    zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / "run", reporters=[], sets=tiny_sets(tiny_data))
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_the_command_leaves_the_collector_on_after_it_returns(tmp_path: Path) -> None:
    """`zoo.cli.main` in a program of its own: the collector paused for the command, on again after it."""
    script = "import gc, sys\nfrom zoo.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint(gc.isenabled(), gc.get_freeze_count() > 0)\n"
    done = subprocess.run([sys.executable, "-c", script, "list", "models"], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "True True"
