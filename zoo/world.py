"""Which process this is in a data-parallel job, read from torchrun's environment. No torch here,
so the CLI can ask "am I rank 0?" for free."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ZooError, option


@dataclass(frozen=True)
class World:
    """This process's place in the job; a plain `zoo run` is rank 0 of a world of one."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    job: str | None = None  # torchrun's rendezvous id: the same for every rank and every restart
    restart: int = 0  # how many times torchrun has restarted the workers of this job

    @property
    def main(self) -> bool:
        """Rank 0 prints, writes the run directory and its checkpoints; the others only train."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The world that torchrun's environment variables describe (a world of one without them)."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return World()
    try:
        return World(
            rank=int(env["RANK"]),
            size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            job=env.get("TORCHELASTIC_RUN_ID"),
            restart=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
        )
    except ValueError:
        raise ZooError(f"RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be numbers; start zoo through torchrun or `zoo run --nproc N`.") from None


def check_shards(batch_size: int, processes: int, samples: int | None = None) -> None:
    """Every process needs a part of every batch, the last (maybe smaller) one included."""
    last = (samples % batch_size or batch_size) if samples else batch_size
    if min(batch_size, last) < processes:
        smaller = f", the last one of {last} samples included," if last < batch_size else ""
        raise ZooError(
            f"{option('--batch-size', batch_size)} cannot be split over {processes} processes: every batch{smaller} needs at least "
            f"one sample per process (the batch size is the global batch, shared by the processes). Choose a larger "
            f"batch or fewer processes."
        )
