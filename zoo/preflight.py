"""`zoo run --check` (zoo.api.check): every check a run makes before its first step, without the run. The data is read,
every component built and one batch goes through the model and the loss (zoo.contract), then nothing is written:
worth the seconds before a long job goes into a queue, where `--dry-run` only validates the settings."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ResolvedRun
from .device import deterministic_mode, own_random_state, select_device
from .events import Events
from .runner import build
from .world import World


@dataclass
class Checked:
    """What the run would train, as built: the network's size, the data's, where and in what precision it computes."""

    resolved: ResolvedRun
    parameters: int
    train_samples: int
    test_samples: int
    classes: int
    device: str
    precision: str
    precision_reason: str
    steps_per_epoch: int

    def __str__(self) -> str:
        config = self.resolved.config
        return (f"Checked, nothing written: {config.model} ({self.parameters:,} parameters) on {config.dataset} ({self.train_samples:,} "
                f"training and {self.test_samples:,} test samples, {self.classes} classes), {config.epochs} epoch(s) of "
                f"{self.steps_per_epoch:,} steps, batch {config.batch_size}, on {self.device}, {self.precision_reason}; one batch went through the model and the {config.loss} loss.")


def check(resolved: ResolvedRun, resuming: bool = False) -> Checked:
    """Build the run in this process alone (as one rank: a --nproc job shards the same data), check one batch, close
    what was opened. `resuming`: the checkpoint would bring the weights, so --init's source is not read."""
    world = World()
    device = select_device(resolved.config.device)
    events, failed = Events(), False
    try:
        with own_random_state(), deterministic_mode(resolved.config.deterministic, device):
            t = build(resolved, world, device, events, resuming=resuming)
    except BaseException:
        failed = True
        raise
    finally:
        events.close(failed)
    return Checked(resolved, sum(p.numel() for p in t.model.parameters()), len(t.data.train), len(t.data.test), len(t.data.classes),
                   str(device), t.precision.name, t.precision.reason, len(t.train_batches))
