"""What can end or pause a training between two steps, each a small piece the loop asks:
a checkpoint every N steps, Ctrl-C (and SIGTERM, SIGHUP), and a loss that is no longer a number (watched on the device
by Health, so that no step waits for the host; zoo.rewind puts the weights back)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import Interrupted, ZooError, resume_it
from .interrupts import raise_when_safe


class StopRequest(threading.Event):
    """Set by a signal that asks the run to stop: Ctrl-C (SIGINT), or SIGTERM and SIGHUP, which a job queue sends
    before it kills, and a closed terminal sends."""

    def __init__(self) -> None:
        super().__init__()
        self.signal = signal.SIGINT
        self.saving = False  # a checkpoint is being written: a second Ctrl-C waits for it (else the run might have none)
        self.now = False  # a second Ctrl-C came while saving: stop as soon as the checkpoint is written

    @contextmanager
    def saving_checkpoint(self, run_dir: Path) -> Iterator[None]:
        """A checkpoint write that a second Ctrl-C does not cut short; it stops the run right after instead."""
        self.saving = True
        try:
            yield
        finally:
            self.saving = False
        if self.now:
            raise Interrupted(f"Interrupted (Ctrl-C, twice) while a checkpoint was written, which was finished first; continue with "
                              f"{resume_it(run_dir)}.", run_dir=run_dir)

    @property
    def reason(self) -> str:
        return "Ctrl-C" if self.signal == signal.SIGINT else self.signal.name

    def interrupted(self, message: str, run_dir: Path | None = None) -> Interrupted:
        """`message` after "Interrupted (REASON) ", exiting as a shell reports that signal (128 + its number)."""
        return Interrupted(f"Interrupted ({self.reason}) {message}", 128 + int(self.signal), run_dir)


class NonFiniteLoss(ZooError):
    """The loss became NaN or infinite; raised before that step touched the weights."""

    exit_code = 3

    def __init__(self, batch: int, value: float, unconfirmed_from: int | None = None) -> None:
        super().__init__(f"the loss became {value} at step {batch}")
        self.batch = batch
        self.value = value
        self.unconfirmed_from = unconfirmed_from  # set when the steps taken again from there were all finite (zoo.rewind)


def check_finite(loss: torch.Tensor, batch: int) -> None:
    """Before backward: a NaN or infinite loss stops the run with the weights of the step before.
    A host sync: only used when the steps since the last healthy point are taken again (zoo.rewind)."""
    if not torch.isfinite(loss):
        raise NonFiniteLoss(batch, loss.item())


class Health:
    """Whether every step's loss so far was finite: one boolean on the device, updated in place by
    each step (also inside a captured CUDA graph) and read by the host only where the loop reads
    the loss anyway (log points, checkpoints, epoch ends)."""

    def __init__(self, device: torch.device) -> None:
        self.finite = torch.ones((), dtype=torch.bool, device=device)

    def record(self, loss: torch.Tensor) -> None:
        self.finite.logical_and_(torch.isfinite(loss.detach()))

    def reset(self) -> None:
        self.finite.fill_(True)


@dataclass(frozen=True)
class CheckpointEvery:
    """--checkpoint-every N: a checkpoint after every N-th step of the run, except on an epoch's
    last step, whose checkpoint the epoch end writes anyway (never the same step twice)."""

    steps: int | None

    def due(self, global_step: int, batch: int, steps_per_epoch: int) -> bool:
        return bool(self.steps) and global_step % self.steps == 0 and batch < steps_per_epoch  # type: ignore[operator]


STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def ctrl_c(enabled: bool = True) -> Iterator[StopRequest]:
    """Ctrl-C (or SIGTERM, SIGHUP) sets a flag that the loop checks between steps, so it stops at a clean step
    with a checkpoint; a second one stops at once (KeyboardInterrupt), e.g. during a long test pass.
    Not in a job of several ranks: there torchrun stops every rank together."""
    requested = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum: int, frame: Any) -> None:
        if not requested.is_set():
            requested.signal = signal.Signals(signum)
            requested.set()
        elif signum == signal.SIGINT and requested.saving:  # Ctrl-C again, during a checkpoint: right after it
            requested.now = True
        elif signum == signal.SIGINT:  # Ctrl-C again: the person means now. A terminal's or a queue's second signal
            raise_when_safe(KeyboardInterrupt(), signum, frame)  # (bash's SIGHUP after the kernel's, systemd's TERM and
            # HUP) only repeats the first. Not inside an extension's initialisation: it would abort (zoo.interrupts).

    # A signal set to be ignored stays ignored: `nohup zoo run` survives the terminal it was started from.
    previous = {number: signal.signal(number, handle) for number in STOPPING if signal.getsignal(number) is not signal.SIG_IGN}
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
