"""Data-parallel training on torch.distributed: which process this is (torchrun's environment), the
process group, sums over every rank, and the launcher behind `zoo run --nproc N`.

zoo adds no engine of its own: workers are started by torch.distributed.run (torchrun), gradients are
averaged by DistributedDataParallel, and collectives go through gloo (CPU) or nccl (CUDA). Importing
this module does not import torch, so the CLI can ask "am I rank 0?" for free.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .errors import ZooError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


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


def check_shards(batch_size: int, processes: int, samples: int | None = None) -> None:
    """Every process needs a part of every batch, the last (maybe smaller) one included."""
    last = (samples % batch_size or batch_size) if samples else batch_size
    if min(batch_size, last) < processes:
        smaller = f", the last one of {last} samples included," if last < batch_size else ""
        raise ZooError(
            f"--batch-size {batch_size} cannot be split over {processes} processes: every batch{smaller} needs at least "
            f"one sample per process (--batch-size is the global batch, shared by the processes). Choose a larger "
            f"batch or fewer processes."
        )


def check_devices(device: str, processes: int) -> None:
    """The device asked for is there, with a GPU for each process (the last local rank's) when it is CUDA."""
    from .runner import select_device

    select_device(device, processes - 1)


def job_run_dir(runs_root: Path, out: Path | None, job: str | None) -> Path | None:
    """The unfinished run directory that the job `job` began (before torchrun restarted it), if any.
    Without a rendezvous id of its own ("none": torchrun given only --master-port) a job cannot be
    told from others, so none is found."""
    from .rundir import CONFIG, WEIGHTS, read_config

    if not job or job == "none":
        return None
    found = []
    for candidate in [out] if out is not None else [p for p in runs_root.glob("*") if p.is_dir()]:
        try:
            launch = read_config(candidate).get("launch")
        except ZooError:
            continue
        if isinstance(launch, dict) and launch.get("job") == job and not (candidate / WEIGHTS).exists():
            found.append(candidate)
    return max(found, key=lambda p: (p / CONFIG).stat().st_mtime, default=None)


def lost_peer(error: BaseException) -> bool:
    """Whether a collective failed because another rank went away (it died, or was stopped)."""
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


class WorkerFailed(ZooError):
    """A rank of a `zoo run --nproc` job failed; the launcher stopped the others."""


def launch(nproc: int, zoo_run_args: list[str], *, max_restarts: int = 0, out: Path | None = None, resume: Path | None = None) -> None:
    """`zoo run ARGS` in `nproc` processes on this machine, started by torch.distributed.run (what
    `torchrun --standalone --nproc-per-node N -m zoo run ARGS` does), with a job id zoo can find its
    run by; a failed rank ends the job with an error that names it and says how to continue."""
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as elastic_run

    from .runner import Interrupted

    job = f"zoo-{uuid.uuid4().hex[:12]}"
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # one core's share each
    args = get_args_parser().parse_args([
        "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "--rdzv-id", job,
        "--module", "zoo", "run", *zoo_run_args,
    ])
    for name in list(logging.root.manager.loggerDict):  # zoo says what failed, once; torchrun's own log would repeat it
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def how_to_continue() -> str:
        from .checkpoint import newest

        run_dir = resume or job_run_dir(Path("runs"), out, job)
        if run_dir is None or not (run_dir / "config.json").is_file() or (run_dir / "model.safetensors").exists():
            return ""
        if newest(run_dir)[0] is None:
            return (f" {run_dir} has no checkpoint yet (the first is written at the end of epoch 1, or after --checkpoint-every "
                    f"steps), so there is nothing to resume: start the run again (delete {run_dir} or choose another --out).")
        return f" Its newest checkpoint is kept: continue with `zoo run --resume {run_dir} --nproc {nproc}`."

    try:
        elastic_run(args)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        tried = f" after {max_restarts} restart(s)" if max_restarts else ""
        failed = WorkerFailed(
            f"Rank {rank} of {nproc} (pid {failure.pid}) {how}{tried}; the other ranks were stopped and the job ended "
            f"(its own message, if it printed one, is above).{how_to_continue()}"
        )
        failed.exit_code = failure.exitcode if failure.exitcode > 0 else 1
        raise failed from None
    except SignalException as error:
        name = signal.Signals(error.sigval).name
        raise Interrupted(f"Interrupted ({name}): every rank was stopped.{how_to_continue()}") from None
