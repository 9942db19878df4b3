"""Every run setting, as one pydantic model. Recipes (zoo.presets) are derived from it, so the two
never drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt


class RunConfig(BaseModel):
    """Every run setting. Component names may be presets (mlp-512); `params` holds overrides per
    section: dataset, model, loss, optimizer, scheduler, or a reporter's name."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = "quickstart"
    dataset: str = "fashion-mnist"
    model: str = "mlp-512"
    loss: str = "cross-entropy"
    optimizer: str = "sgd"
    scheduler: str = "constant"
    reporters: list[str] = ["console"]
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 64
    shuffle: bool = False
    stratify: bool = False
    """With shuffle: each batch holds every class in proportion to the split (zoo.data.stratified_order)."""
    seed: int = Field(0, ge=-(2**63), le=2**64 - 1)  # the range torch.manual_seed accepts
    log_every: PositiveInt = 100
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    mixup: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    """mixup's alpha: each training image and its label mixed with another's, lam ~ Beta(alpha, alpha)
    (zoo.data.MixUp); 0 is off. The loss must take class probabilities as targets."""
    out: Path | None = None
    predict_index: NonNegativeInt = 0
    checkpoint_every: PositiveInt | None = None
    keep_checkpoints: PositiveInt = 2
    deterministic: bool = False
    cuda_graphs: Literal["auto", "off"] = "auto"
    """auto: on a CUDA device, each training step is replayed as one CUDA graph where the components allow (zoo.graphs)."""
    init: str | None = None
    """A trained model's name or a finished run directory to start from (zoo run --init; zoo.finetune)."""
    init_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """The SHA-256 of init's weights, pinned when the run is resolved."""
    init_new_head: bool = False
    """With init: the final layer may differ (another number of classes) and starts fresh."""
    params: dict[str, dict[str, Any]] = {}
