"""The training step as one CUDA graph: on a GPU a small model's eager step is bound by kernel
launches, Python and autograd, not by arithmetic; replayed as a graph, the same kernels run back to
back (PyTorch's "whole network capture", torch.cuda.graphs). The batch is copied into static
inputs; forward, loss, the non-finite watch, backward and the optimizer step are captured once and
replayed; the scheduler runs on the host between replays and writes the learning rate into a
device tensor that the captured step reads. A batch of another size (an epoch's last) runs eagerly.

What keeps a component capturable (docs/plugins.md): no host reads (.item(), `if tensor:`,
.tolist()) and no data-dependent shapes in forward or the loss; an optimizer that reads its
learning rate from a tensor when the schedule changes it (torch's SGD through its fused kernel,
Adam and AdamW with capturable=True; others with a constant learning rate); a scheduler that
changes nothing but the learning rate. Anything else runs eagerly, with one line saying why.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from .errors import option

if TYPE_CHECKING:
    from .runner import Trainer

Step = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
WARMUP = 3  # eager steps on a side stream before the capture (lazy state such as momentum buffers exists by then)


def choose_step(t: Trainer, eager: Step) -> Step:
    """The captured step on CUDA where every component allows it; else `eager`, with one line
    saying which component and why when capture was wanted."""
    if t.device.type != "cuda" or t.config.cuda_graphs == "off":
        return eager
    reason = not_capturable(t)
    if reason is not None:
        tell(t, reason)
        return eager
    return CapturedStep(t, eager)


def not_capturable(t: Trainer) -> str | None:
    """Why this run's step cannot be one graph, read from its components before trying."""
    if t.world.distributed:
        return "a job of several processes (DistributedDataParallel) runs its steps eagerly"
    if any(getattr(t.scheduler, name, False) for name in ("cycle_momentum", "use_beta1")):
        return f"the scheduler {t.resolved.scheduler.resolved.name!r} changes the momentum every step (a number the graph would keep fixed)"
    if lr_changes(t) and tensor_lr_kind(t.optimizer) is None:
        return (f"the optimizer {t.resolved.optimizer.resolved.name!r} ({type(t.optimizer).__name__}) reads its learning rate as a "
                f"Python number, and the scheduler {t.resolved.scheduler.resolved.name!r} changes it every step")
    return None


def lr_changes(t: Trainer) -> bool:
    """Whether the schedule moves the learning rate (torch's ConstantLR with factor 1 does not)."""
    from torch.optim.lr_scheduler import ConstantLR

    return not (isinstance(t.scheduler, ConstantLR) and t.scheduler.factor == 1.0)


def tensor_lr_kind(optimizer: torch.optim.Optimizer) -> str | None:
    """How a torch optimizer takes its learning rate from a device tensor inside a graph."""
    if type(optimizer) is torch.optim.SGD:
        return "fused"  # _fused_sgd_ reads a tensor lr on the device; the foreach path reads it as a number
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        return "capturable"
    return None


def tell(t: Trainer, reason: str) -> None:
    if t.world.main:
        print(f"CUDA graphs off: {reason}. The steps run eagerly (same results, slower on a GPU); "
              f"{option('--cuda-graphs', 'off')} skips the attempt.", file=sys.stderr)


class CapturedStep:
    """Called as zoo.train.step is, (X, y, batch) -> the batch's loss (a static tensor, read
    before the next step); captures on the first full batch after WARMUP eager steps.

    Every optimizer step of the run, captured or eager (warm-up, an epoch's last batch, a rewind's
    retaken steps), runs inside optimizer_as_captured(): the same kernels with the same learning
    rate tensor, so a resume or a rewind computes what the graph computed. The optimizer's own
    settings are put back after each step: checkpoints hold the optimizer as it was built, and
    resume on any device."""

    def __init__(self, t: Trainer, eager: Step) -> None:
        self.t, self.eager = t, eager
        self.size = t.config.batch_size
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.warm = 0
        self.X: torch.Tensor | None = None  # the graph's static inputs and output, made at capture
        self.y: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        kind = tensor_lr_kind(t.optimizer)
        self.settings: dict[str, Any] = {}
        if kind == "capturable":  # Adam's step counters on the device, with any schedule
            self.settings = {"capturable": True}
            t.optimizer._warned_capturable_if_run_uncaptured = True  # type: ignore[attr-defined]  # eager steps are meant
        self.lrs: list[torch.Tensor] = []
        if lr_changes(t):  # a learning rate the graph reads from the device
            self.lrs = [torch.tensor(float(group["lr"]), dtype=torch.float32, device=t.device) for group in t.optimizer.param_groups]
            if kind == "fused":
                self.settings = {"fused": True, "foreach": False}  # _fused_sgd_ takes a tensor lr; foreach would read it
        t.optimizer_as = self.optimizer_as_captured

    @contextmanager
    def optimizer_as_captured(self, fill: bool = True) -> Iterator[None]:
        """The optimizer's groups as the graph holds them for one step; `fill`: the learning rate
        tensors take the scheduler's numbers first (an async fill, not inside a capture)."""
        groups = self.t.optimizer.param_groups
        saved = [{key: group.get(key) for key in (*self.settings, "lr")} for group in groups]
        try:
            for group, lr in zip(groups, self.lrs):
                if fill:
                    lr.fill_(group["lr"])
                group["lr"] = lr
            for group in groups:
                group.update(self.settings)
            if "capturable" in self.settings:
                _state_steps_to_device(self.t.optimizer)
            yield
        finally:
            for group, before in zip(groups, saved):
                group.update(before)

    def __call__(self, X: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
        if self.failed or len(X) != self.size:
            if self.graph is not None:  # the graph's gradient buffers hold its last step's: backward must not add to them
                self.t.optimizer.zero_grad(set_to_none=True)
            return self.eager(X, y, batch)
        if self.warm < WARMUP:
            self.warm += 1
            return self._on_side_stream(X, y, batch)
        if self.graph is None and not self._capture(X, y):
            return self.eager(X, y, batch)
        self.X.copy_(X, non_blocking=True)  # type: ignore[union-attr]
        self.y.copy_(y, non_blocking=True)  # type: ignore[union-attr]
        for lr, group in zip(self.lrs, self.t.optimizer.param_groups):
            lr.fill_(group["lr"])  # the scheduler's number for this step
        self.graph.replay()  # type: ignore[union-attr]
        self.t.scheduler.step()
        return self.loss  # type: ignore[return-value]

    def _on_side_stream(self, X: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
        side = torch.cuda.Stream(self.t.device)
        side.wait_stream(torch.cuda.current_stream(self.t.device))
        with torch.cuda.stream(side):
            loss = self.eager(X, y, batch)
        torch.cuda.current_stream(self.t.device).wait_stream(side)
        return loss

    def _capture(self, X: torch.Tensor, y: torch.Tensor) -> bool:
        """Record the step once (nothing runs while recording); False, with one line, if a component
        does something a graph cannot hold."""
        t = self.t
        self.X, self.y = torch.empty_like(X), torch.empty_like(y)
        stage, graph, stream = "model", torch.cuda.CUDAGraph(), torch.cuda.current_stream(t.device)
        t.optimizer.zero_grad(set_to_none=True)  # backward allocates the gradients from the graph's pool
        try:
            with torch.cuda.graph(graph):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=t.bf16, cache_enabled=False):
                    pred = t.trained(self.X)
                    stage = "loss"
                    loss = t.loss_fn(pred, self.y)
                t.health.record(loss)
                stage = "model"  # its backward
                loss.backward()
                stage = "optimizer"
                with self.optimizer_as_captured(fill=False):
                    t.optimizer.step()
        except Exception as error:  # a component that syncs or changes shape: eager from now on
            self._failed(stage, error, stream)
            return False
        self.graph, self.loss = graph, loss.detach()
        return True

    def _failed(self, stage: str, error: Exception, stream: torch.cuda.Stream) -> None:
        """Back to the stream the run was on (a failed capture may leave its own current), the
        never-computed gradients dropped, and one line naming the component."""
        t = self.t
        torch.cuda.set_stream(stream)
        torch.cuda.synchronize(t.device)
        t.optimizer.zero_grad(set_to_none=True)
        self.failed = True
        t.optimizer_as = nullcontext
        part = {"model": t.resolved.model, "loss": t.resolved.loss, "optimizer": t.resolved.optimizer}[stage]
        tell(t, f"the {stage} {part.resolved.name!r} ({part.resolved.component.owner}) cannot be captured: "
                f"{type(error).__name__}: {' '.join(str(error).split())[:200]}")


def _state_steps_to_device(optimizer: torch.optim.Optimizer) -> None:
    """Adam's step counters live on the CPU unless capturable; a graph needs them on the device."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state: dict[str, Any] = optimizer.state.get(param, {})
            step = state.get("step")
            if isinstance(step, torch.Tensor) and step.device != param.device:
                state["step"] = step.to(param.device, dtype=torch.float32)
