"""The garbage collector in a `zoo` process, paused while a run starts and kept off what start-up made.

Why: importing torch (and torch._dynamo, which the first optimizer imports) makes about 400,000 objects that live
as long as the process. The collector walks all of them again and again while they are made, and once more as the
interpreter exits, for nothing: about 1.5 s of a short run on two cores (a quarter of a 5-epoch run's fixed cost).
So the `zoo` command starts with collection off (`pause`); once a run is built, what exists is frozen out of later
collections (gc.freeze) and collection resumes (`resume`); when the run is over, the frozen objects are the
collector's again (`run_over`: the run's own cycles, such as the trainer's, are garbage now, and `zoo leaderboard`
trains again); at exit, everything is frozen (`exiting`). The other commands are short and run without collection;
a Python program that calls zoo.run keeps its own collector as it was."""

from __future__ import annotations

import gc

_paused = False  # pause() turned the collector off
_frozen = False  # resume() froze what start-up made


def pause() -> None:
    """No collection until `resume` (or the end of the command)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Start-up is done: freeze what it made, then collect as usual. Does nothing unless `pause` stopped it."""
    global _paused, _frozen
    if _paused:
        gc.freeze()
        gc.enable()
        _paused, _frozen = False, True


def run_over() -> None:
    """The run is done: what `resume` froze is the collector's again, so that the run's cycles can be freed."""
    global _frozen
    if _frozen:
        gc.unfreeze()
        _frozen = False


def exiting() -> None:
    """The process is about to exit: nothing needs collecting, so freeze it all (the interpreter's last
    collections then skip it) and leave the collector as it was found."""
    global _paused
    gc.freeze()
    if _paused:
        gc.enable()
        _paused = False
