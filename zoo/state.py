"""Everything a run must carry across a restart, in one object that goes to and from a checkpoint
as a whole (torchtitan's TrainState): where the run is, its running loss, its finished epochs and
every random state it draws from, for every rank."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contracts import EpochEnd
from .errors import ZooError, describe_validation_error


@dataclass
class TrainState:
    epoch: int = 1  # the epoch in progress, from 1
    batch: int = 0  # its training steps done
    global_step: int = 0  # training steps done in the whole run
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros(()))  # this epoch's, on the device, never synced per step
    epochs: list[EpochEnd] = field(default_factory=list)  # finished epochs (trained and tested)
    order_rng: torch.Tensor | None = None  # the shuffle generator at the start of this epoch (to redraw its order)
    earlier_seconds: float = 0.0  # the epoch in progress's time before this process took it up (a resumed checkpoint's)
    clock: float = field(default_factory=time.perf_counter)  # when this process started or took up the epoch in progress

    def start_epoch(self, epoch: int, order_rng: torch.Tensor, device: torch.device) -> None:
        self.epoch, self.batch, self.order_rng = epoch, 0, order_rng
        self.loss_sum = torch.zeros((), device=device)
        self.earlier_seconds, self.clock = 0.0, time.perf_counter()

    def take_up_epoch(self) -> None:
        """A resumed epoch's clock goes on from the seconds its checkpoint recorded: EpochEnd.seconds is the whole epoch's."""
        self.clock = time.perf_counter()

    @property
    def epoch_seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self.clock

    def step_done(self, weighed_loss: torch.Tensor) -> None:
        self.batch += 1
        self.global_step += 1
        self.loss_sum += weighed_loss

    def epoch_done(self, end: EpochEnd) -> None:
        self.epochs.append(end)

    @property
    def tested(self) -> bool:
        """Whether the epoch in progress has been trained and tested (its checkpoint is the epoch end's)."""
        return len(self.epochs) >= self.epoch

    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(what goes to state.json, what goes to safetensors)."""
        record = {"epoch": self.epoch, "batch": self.batch, "global_step": self.global_step, "epochs": [asdict(e) for e in self.epochs],
                  "epoch_seconds": self.epoch_seconds}
        tensors = {"train_loss_sum": self.loss_sum.detach().float().cpu().reshape(())}
        if self.order_rng is not None:
            tensors["order_epoch_start"] = self.order_rng
        return record, tensors

    @classmethod
    def from_state_dict(cls, record: Any, tensors: dict[str, torch.Tensor], *, steps_per_epoch: int, epochs: int, device: torch.device) -> TrainState:
        """The state a checkpoint holds, checked against the run it belongs to: a crafted or damaged
        state.json is a ZooError, never a run that skips, repeats or invents an epoch."""
        try:
            saved = StateRecord.model_validate(record)
        except ValidationError as error:
            raise ZooError(f"state.json does not validate: {describe_validation_error('', error)}") from None
        problem = saved.problem(steps_per_epoch, epochs)
        loss = tensors.get("train_loss_sum")
        if problem is None and (loss is None or loss.dtype != torch.float32 or loss.numel() != 1 or not torch.isfinite(loss).all()):
            problem = "its running loss is missing or not a finite number"
        order = tensors.get("order_epoch_start")
        if problem is None and order is not None and order.dtype != torch.uint8:
            problem = "its shuffle state is malformed"
        if problem:
            raise ZooError(f"state.json does not fit this run: {problem}")
        epochs_done = [EpochEnd(**e.model_dump()) for e in saved.epochs]
        return cls(saved.epoch, saved.batch, saved.global_step, loss.reshape(()).to(device), epochs_done, order, saved.epoch_seconds)


class EpochRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    epoch: int = Field(ge=1)
    train_loss: float = Field(allow_inf_nan=False)
    test_loss: float = Field(allow_inf_nan=False)
    test_accuracy: float = Field(ge=0, le=1)
    seconds: float = Field(ge=0, allow_inf_nan=False)


class StateRecord(BaseModel):
    """state.json's place in the run; other keys (optimizer, scheduler, rng) are checked where they load."""

    model_config = ConfigDict(extra="ignore", strict=True)

    epoch: int = Field(ge=1)
    batch: int = Field(ge=0)
    global_step: int = Field(ge=0)
    config_hash: str
    epochs: list[EpochRecord]
    epoch_seconds: float = Field(default=0.0, ge=0, allow_inf_nan=False)  # the epoch in progress so far (0 where an older checkpoint lacks it)

    def problem(self, steps_per_epoch: int, epochs: int) -> str | None:
        if self.epoch > epochs:
            return f"epoch {self.epoch} is past the run's {epochs} epochs"
        if self.batch > steps_per_epoch:
            return f"step {self.batch} is past the {steps_per_epoch} steps of an epoch"
        if self.global_step != (self.epoch - 1) * steps_per_epoch + self.batch:
            return f"global step {self.global_step} is not epoch {self.epoch}, step {self.batch}"
        if [e.epoch for e in self.epochs] != list(range(1, len(self.epochs) + 1)):
            return "its finished epochs are not numbered 1, 2, ..."
        if len(self.epochs) not in (self.epoch - 1, self.epoch) or (len(self.epochs) == self.epoch and self.batch != steps_per_epoch):
            return f"it records {len(self.epochs)} finished epochs at epoch {self.epoch}, step {self.batch}"
        return None


@dataclass
class RankState:
    """One process's own random states: torch's (dropout), its GPU's, Python's and NumPy's; and its
    running loss, so that the same number of processes resumes bit for bit."""

    tensors: dict[str, torch.Tensor]
    plain: dict[str, Any]

    @property
    def loss_sum(self) -> float:
        return float(self.tensors["loss_sum"])

    @classmethod
    def capture(cls, device: torch.device, loss_sum: torch.Tensor | None = None) -> RankState:
        """This process's random states now (no host sync), and its running loss when given (one)."""
        import numpy as np

        tensors = {"torch": torch.get_rng_state()}
        if loss_sum is not None:
            tensors["loss_sum"] = loss_sum.detach().float().cpu().reshape(())
        if device.type == "cuda":  # this rank's GPU only: no context on the others, and any GPU count resumes it
            tensors["cuda"] = torch.cuda.get_rng_state(device)
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        version, state, gauss = random.getstate()
        plain = {"python": [version, list(state), gauss], "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
        return cls(tensors, plain)

    def restore(self, device: torch.device) -> None:
        """Every failure (a crafted or short state) is a ZooError."""
        import numpy as np

        try:
            torch.set_rng_state(self.tensors["torch"])
            if device.type == "cuda" and "cuda" in self.tensors:
                torch.cuda.set_rng_state(self.tensors["cuda"], device)
            version, state, gauss = self.plain["python"]
            if not (isinstance(state, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in state)):
                raise ValueError("Python's state is not a list of integers")
            if gauss is not None and not (isinstance(gauss, float) and math.isfinite(gauss)):
                raise ValueError("Python's state is malformed")
            random.setstate((version, tuple(state), gauss))
            kind, keys, pos, has_gauss, cached = self.plain["numpy"]
            np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, IndexError) as error:
            raise ZooError(f"its random states do not load ({' '.join(str(error).split())})") from None


def rng_files(ranks: list[RankState], augment: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Every rank's random states as safetensors keys and JSON; the augmentation generator is the same on every rank."""
    tensors = {f"rank{r}.{name}": value for r, rank in enumerate(ranks) for name, value in rank.tensors.items()}
    if augment is not None:
        tensors["augment"] = augment
    return tensors, [rank.plain for rank in ranks]


def restore_rank(state: TrainState, tensors: dict[str, torch.Tensor], plain: Any, world_size: int, rank: int, device: torch.device) -> None:
    """This rank's saved random states and, when as many processes resume as saved it, its own running
    loss. A job resumed with more processes than saved it gives the new ranks rank 0's random states
    (documented: then dropout is not bit-identical, as it could not be)."""
    if not isinstance(plain, list) or not plain or not all(isinstance(p, dict) for p in plain):
        raise ZooError("its random states are malformed")
    source = rank if rank < len(plain) else 0
    own = {name.split(".", 1)[1]: value for name, value in tensors.items() if name.startswith(f"rank{source}.")}
    if own.get("torch") is None or own["torch"].dtype != torch.uint8:
        raise ZooError("its random states are malformed")
    RankState(own, plain[source]).restore(device)
    loss = own.get("loss_sum")
    if len(plain) == world_size and loss is not None and loss.dtype == torch.float32 and loss.numel() == 1 and torch.isfinite(loss).all():
        state.loss_sum = loss.reshape(()).to(device)
