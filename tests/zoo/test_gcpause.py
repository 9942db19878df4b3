"""The collector around a `zoo` process (zoo.gcpause): off while a run starts, back on (without what start-up
made) once the run is built, frozen at exit; left alone where zoo did not turn it off."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
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
    gcpause._paused = gcpause._frozen = False
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


def test_a_run_collects_once_built_and_frees_its_cycles_when_over(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`zoo leaderboard` trains one run after another in one process: the first run's trainer (a cycle) must not stay."""
    from zoo import runner

    trainers, seen = [], []
    built = runner.build

    def build(*args, **kwargs):
        trainer = built(*args, **kwargs)
        trainers.append(weakref.ref(trainer))
        return trainer

    def run(*args, **kwargs):  # the collector's state while the run trains
        seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
        return fit(*args, **kwargs)

    fit = runner._fit
    monkeypatch.setattr(runner, "build", build)
    monkeypatch.setattr(runner, "_fit", run)
    gc.unfreeze()
    gcpause.pause()
    for name in ("a", "b"):
        zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / name, reporters=[], sets=tiny_sets(tiny_data))
    assert seen == [(True, True), (True, False)]  # on, without start-up's objects; then as any program's
    gc.collect()
    assert [trainer() for trainer in trainers] == [None, None]


def test_the_command_pauses_the_collector_and_leaves_it_on_after_it_returns(tmp_path: Path) -> None:
    """`zoo.cli.main` in a program of its own: the collector off while the command works, on again after it."""
    script = ("import gc, sys\nfrom zoo import api\nfrom zoo.cli import main\ncatalog = api.catalog\n"
              "api.catalog = lambda *args: (print('working', gc.isenabled()), catalog(*args))[1]\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\nprint('after', gc.isenabled(), gc.get_freeze_count() > 0)\n")
    done = subprocess.run([sys.executable, "-c", script, "list", "models"], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "working False" and lines[-1] == "after True True"
