"""The hooks a zoo plugin implements. Each receives a `register` callback (as in llm),
so the core owns naming, collisions and ownership."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_datasets(register):
    """register(name, factory, params=Model, help=...); factory(params) -> zoo.DatasetSplits."""


@hookspec
def register_models(register):
    """register(name, factory, params=Model, help=...); factory(params, input_shape, num_classes) -> nn.Module."""


@hookspec
def register_losses(register):
    """register(name, factory, params=Model, help=...); factory(params) -> callable(logits, targets) -> scalar tensor."""


@hookspec
def register_optimizers(register):
    """register(name, factory, params=Model, help=...); factory(params, model_parameters) -> torch.optim.Optimizer."""


@hookspec
def register_schedulers(register):
    """register(name, factory, params=Model, help=...); factory(params, optimizer, steps_per_epoch, epochs)
    -> a torch.optim.lr_scheduler.LRScheduler, stepped once after every optimizer step."""


@hookspec
def register_reporters(register):
    """register(name, factory, params=Model, help=...); factory(params) -> an object with zoo.Reporter's methods."""


@hookspec
def register_presets(register):
    """register(path): a TOML file in registry.toml's format that this plugin ships."""


@hookspec
def register_trained_models(register):
    """register(path): a folder of trained models this plugin ships, one sub-folder per name holding
    card.json and model.safetensors as `zoo save` writes them (zoo checks each SHA-256 when loading)."""


#: Hook name -> the component kind it fills (presets are not components).
COMPONENT_HOOKS = {
    "register_datasets": "dataset",
    "register_models": "model",
    "register_losses": "loss",
    "register_optimizers": "optimizer",
    "register_schedulers": "scheduler",
    "register_reporters": "reporter",
}
