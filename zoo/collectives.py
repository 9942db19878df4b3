"""What the ranks of a job do together, on torch.distributed: join the process group, average the
gradients (DistributedDataParallel), and share values (a run directory, sums, random states).

zoo adds no engine of its own: gloo on CPU, nccl on CUDA. In a world of one, every function here is
the identity and touches no collective.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from .errors import ZooError
from .world import World

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


@contextmanager
def joined(world: World, device: torch.device) -> Iterator[None]:
    """Join the job's process group for the length of a run: gloo on CPU, nccl on CUDA."""
    if not world.distributed:
        yield
        return
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    # torchrun keeps one store for the job; after a restart, the keys of the failed attempt's process
    # group are still in it and would send the new ranks to dead peers. A prefix per attempt avoids them.
    store, _, _ = next(dist.rendezvous("env://"))
    store = dist.PrefixStore(f"zoo/attempt-{world.restart}", store)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=world.rank, world_size=world.size)
    try:
        yield
        dist.barrier()  # leave together: no rank tears down the group while another still uses it
    except BaseException as error:
        traceback.clear_frames(error.__traceback__)  # let go of the model wrapper its frames hold (below)
        if lost_peer(error):
            raise PeerLost(error) from None
        raise
    finally:
        # DistributedDataParallel holds the group: if it outlived it, gloo's threads would be torn down
        # at interpreter exit and abort the process ("terminate called without an active exception").
        gc.collect()
        dist.destroy_process_group()


def device_index(world: World) -> int | None:
    """Which GPU this rank uses on its machine."""
    return world.local_rank if world.distributed else None


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The model that trains: DistributedDataParallel (averaging gradients over the ranks) or itself."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def broadcast(world: World, value: T) -> T:
    """Rank 0's value (a string, a tuple...) on every rank: e.g. the run directory it chose."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(world: World, value: T) -> list[T]:
    """Every rank's value, in rank order, on every rank (e.g. each rank's random states)."""
    if not world.distributed:
        return [value]
    import torch.distributed as dist

    values: list = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def global_mean(world: World, values: Sequence[float], weight: float, device: torch.device) -> list[float]:
    """The mean of each value over every rank, rank r counting `weight` (e.g. its number of samples)."""
    if not world.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    totals = torch.tensor([*(value * weight for value in values), weight], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return [total / totals[-1].item() for total in totals[:-1].tolist()]


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """The first process of each machine (local rank 0) runs the block first (a download, say), the
    machine's other processes after every first one has finished."""
    if world.distributed and world.local_rank != 0:
        _barrier()
    yield
    if world.distributed and world.local_rank == 0:
        _barrier()


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def lost_peer(error: BaseException) -> bool:
    """Whether a collective failed because another rank went away (it died, or was stopped)."""
    if isinstance(error, ZooError) or not isinstance(error, Exception):
        return False
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or any(word in text for word in ("gloo", "Gloo", "NCCL", "Connection reset", "Connection closed"))


class PeerLost(ZooError):
    """This rank lost its connection to the others; the process that failed is named by the launcher."""

    exit_code = 1

    def __init__(self, error: BaseException) -> None:
        reason = str(error).split("] ", 1)[-1].split(". ", 1)[0]
        super().__init__(
            f"This process stopped: its connection to the other processes of the job broke ({reason}); "
            f"another process of the job failed first."
        )
