"""zoo.train: no training step waits for the host (every read of a device value counted), and a
non-finite loss, seen later at a sync point, still stops the run with the weights and optimizer
state of the step before it (zoo.rewind)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import tiny_sets

import zoo
import zoo.rewind
import zoo.runner
import zoo.train
from zoo import checkpoint
from zoo.stops import NonFiniteLoss

aten = torch.ops.aten


class HostReads(TorchDispatchMode):
    """Counts every read of a tensor's value by the host: .item(), bool(), float(), int() (they all
    dispatch aten._local_scalar_dense) and copies from a device to the CPU; with `patched`, also
    .tolist() and .numpy(), which read CPU memory without dispatching. On a GPU each is a sync."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default:
            self.count += 1
        elif func in (aten._to_copy.default, aten.copy_.default) and _to_host(func, args, kwargs):
            self.count += 1
        return func(*args, **kwargs)


def _to_host(func: Any, args: tuple, kwargs: dict) -> bool:
    if func is aten.copy_.default:
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    device = kwargs.get("device")
    return device is not None and torch.device(device).type == "cpu" and args[0].device.type != "cpu"


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable], Callable]:
    """counted(name, function): the function, counting the host reads of each call into reads[name]."""
    reads: dict[str, list[int]] = {}
    active: list[HostReads] = []
    for name in ("tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self: torch.Tensor, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if active:
                active[-1].count += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)

    def counted(name: str, function: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with HostReads() as mode:
                active.append(mode)
                try:
                    return function(*args, **kwargs)
                finally:
                    active.pop()
                    reads.setdefault(name, []).append(mode.count)

        return wrapper

    counted.reads = reads  # type: ignore[attr-defined]
    return counted


def tiny_run(tiny_data: Path, out: Path, *sets: str, **settings: Any) -> zoo.runner.RunResult:
    settings = {"dataset": "mnist", "model": "mlp-8", "epochs": 2, "out": out, "reporters": [], **settings}
    return zoo.run(sets=[*tiny_sets(tiny_data), "optimizer.lr=0.1", *sets], **settings)


def test_an_epochs_steps_read_from_the_device_once_per_log_point_and_once_at_the_end(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: Any
) -> None:
    monkeypatch.setattr(zoo.train, "train", host_reads("train", zoo.train.train))
    monkeypatch.setattr(zoo.train, "test", host_reads("test", zoo.train.test))
    # 640 samples in batches of 64: 10 steps an epoch; log points at steps 1, 5 and 9; augmentation on
    tiny_run(tiny_data, tmp_path / "a", "dataset.hflip=true", "dataset.shift=2", "optimizer.momentum=0.9",
             log_every=4, shuffle=True, scheduler="one-cycle")
    assert host_reads.reads["train"] == [3 + 1, 3 + 1]
    assert host_reads.reads["test"] == [2, 2]  # the loss sum and the number right, once each
    host_reads.reads.clear()
    tiny_run(tiny_data, tmp_path / "b", log_every=1000)
    assert host_reads.reads["train"] == [1 + 1, 1 + 1]  # step 1 is a log point


def test_the_counter_sees_the_reads_a_step_could_make() -> None:
    """The count above can fail: each way of reading a value is counted."""
    x = torch.ones(3)
    for read in (lambda: x.sum().item(), lambda: bool(x.sum()), lambda: float(x.sum()), lambda: int(x[0])):
        with HostReads() as mode:
            read()
        assert mode.count == 1


def _poisoned(index: int) -> Callable:
    """zoo.runner.build, with training sample `index` made NaN; keeps the trainers it built."""
    build = zoo.runner.build

    def poisoned_build(*args: Any, **kwargs: Any) -> zoo.runner.Trainer:
        trainer = build(*args, **kwargs)
        images, _ = trainer.train_batches.tensors
        images[index] = float("nan")
        poisoned_build.trainers.append(trainer)  # type: ignore[attr-defined]
        return trainer

    poisoned_build.trainers = []  # type: ignore[attr-defined]
    return poisoned_build


def test_a_non_finite_loss_seen_later_stops_with_the_weights_of_the_step_before_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sample 3 of batch 7 (no shuffle) is NaN: step 7 of epoch 1 is the first bad one. Whether the
    loop sees it at once (log_every 1) or only at the epoch's end, the run stops with the weights
    and momentum of step 6, the same as a clean run's checkpoint after step 6."""
    sets = ("optimizer.momentum=0.9",)
    clean = tiny_run(tiny_data, tmp_path / "clean", *sets, epochs=1, checkpoint_every=6, keep_checkpoints=5)
    after_six = next(c for c in checkpoint.candidates(clean.run_dir) if '"global_step": 6' in (c / "state.json").read_text())
    reference = load_file(after_six / "model.safetensors")

    stopped = {}
    for log_every in (1, 1000):
        build = _poisoned(6 * 64 + 3)
        monkeypatch.setattr(zoo.runner, "build", build)
        with pytest.raises(NonFiniteLoss) as raised:
            tiny_run(tiny_data, tmp_path / f"poisoned-{log_every}", *sets, epochs=1, log_every=log_every)
        assert "at step 7 of epoch 1" in str(raised.value) and "loss became nan" in str(raised.value)
        stopped[log_every] = build.trainers[0]  # type: ignore[attr-defined]
    assert stopped[1].healthy.batch == 6 and stopped[1000].healthy.batch == 1  # took 0 and 5 steps again (step 1 is a log point)

    for trainer in stopped.values():
        weights = trainer.model.state_dict()
        assert all(torch.equal(weights[name], reference[name]) for name in reference)
    momenta = [t.optimizer.state_dict()["state"] for t in stopped.values()]
    assert momenta[0].keys() == momenta[1].keys() and momenta[0]
    assert all(torch.equal(momenta[0][k]["momentum_buffer"], momenta[1][k]["momentum_buffer"]) for k in momenta[0])


def test_a_non_finite_loss_not_seen_again_when_the_steps_are_retaken_is_reported_as_such(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a nondeterministic kernel could make it: the NaN is gone when the steps are taken again."""
    build = _poisoned(6 * 64 + 3)
    monkeypatch.setattr(zoo.runner, "build", build)
    restore = zoo.rewind.Healthy.restore

    def restore_and_heal(self: Any, t: Any, state: Any) -> None:
        restore(self, t, state)
        t.train_batches.tensors[0][6 * 64 + 3] = 0.5

    monkeypatch.setattr(zoo.rewind.Healthy, "restore", restore_and_heal)
    with pytest.raises(NonFiniteLoss) as raised:
        tiny_run(tiny_data, tmp_path / "run", epochs=1, log_every=1000)
    message = " ".join(str(raised.value).split())
    assert "seen between steps 2 and 10 of the run, but those steps, taken again, all had finite losses" in message
    assert "with finite weights" in message and "before that step changed any weight" not in message
    assert all(torch.isfinite(v).all() for v in build.trainers[0].model.state_dict().values())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("batch_size", "ranks"), [(64, 1), (7, 1), (64, 2), (5, 3)])
def test_the_test_loss_is_the_quickstarts_mean_over_its_batches(batch_size: int, ranks: int) -> None:
    """The Quickstart's test(): the mean of each batch's mean loss, the last smaller batch counting as one; the same when the
    test split is seen in larger batches, and over several ranks (each rank's value weighted by its samples)."""
    from torch.utils.data import DataLoader

    from zoo.data import Batches, TensorSplit
    from zoo.train import test, test_batch_size

    generator = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.rand(1000, 1, 4, 4, generator=generator), torch.randint(0, 3, (1000,), generator=generator))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    loss_fn = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        batches = [loss_fn(model(X), y).item() for X, y in DataLoader(split, batch_size=batch_size)]
    quickstart = sum(batches) / len(batches)
    results = [test(Batches(split, test_batch_size(batch_size, 100), torch.device("cpu"), shard=(rank, ranks)), model, loss_fn, batch_size=batch_size)
               for rank in range(ranks)]
    sizes = [Batches(split, test_batch_size(batch_size, 100), torch.device("cpu"), shard=(rank, ranks)).local_samples for rank in range(ranks)]
    combined = sum(loss * size for (loss, _), size in zip(results, sizes)) / sum(sizes)
    assert combined == pytest.approx(quickstart, rel=1e-6)
    if batch_size == 64:  # the last batch holds 40: not the mean per sample, which zoo printed before
        with torch.no_grad():
            per_sample = loss_fn(model(split.images), split.labels).item()
        assert abs(quickstart - per_sample) > 1e-4 * abs(combined - quickstart) + 1e-7
    if ranks == 1:
        assert results[0][0] == pytest.approx(quickstart, rel=1e-12)
