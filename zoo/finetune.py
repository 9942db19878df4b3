"""`zoo run --init NAME_OR_RUN`: start from trained weights instead of a fresh initialisation.

Every tensor that matches in name and shape is loaded; anything else is an error naming the first
layer that differs, except, with --init-new-head, the final layer (another number of classes),
which keeps its fresh initialisation. The source's SHA-256 is pinned when the run is resolved,
so it is part of the run's identity and config.json records it; a resume does not read it again.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import ZooError, option, resume_it, set_it, spoken
from .store import Source, open_source

if TYPE_CHECKING:
    from .config import ResolvedRun
    from .plugins import Catalog
    from .settings import RunConfig

#: The run settings --init adds; a run without --init records none of them in its identity.
INIT_SETTINGS = ("init", "init_sha256", "init_new_head")


def pinned(catalog: Catalog, resolved: ResolvedRun) -> ResolvedRun:
    """The run with the SHA-256 of its --init source filled in (or checked, when it was given)."""
    config = resolved.config
    if config.init is None:
        if config.init_new_head:
            raise ZooError(f"{option('--init-new-head')} applies to a run started from trained weights; add {option('--init', 'NAME_OR_RUN')}.")
        return resolved
    source = open_source(config.init, catalog)
    _check_pin(config, source)
    _check_inputs(resolved, source)
    return replace(resolved, config=config.model_copy(update={"init_sha256": source.sha256}))


def _check_inputs(resolved: ResolvedRun, source: Source) -> None:
    """Trained weights expect the pixels they were trained on: standardised (dataset.normalize) or not. Feeding the
    other kind trains on, a few points worse, with nothing said: refuse it, saying what to set. Compared like with
    like: the source's own dataset.normalize (its recorded mean and std for a run that lacks it)."""
    standardises = getattr(resolved.dataset.params, "normalize", None)
    dataset = (source.config.get("components") or {}).get("dataset") or {}
    recorded = (dataset.get("params") or {}).get("normalize") if isinstance(dataset, dict) else None
    trained = recorded if isinstance(recorded, bool) else bool(source.config.get("input_normalization"))
    if not isinstance(standardises, bool) or trained == standardises:
        return
    if trained:
        raise ZooError(f"{option('--init', source.label)}: it was trained on standardised pixels (dataset.normalize = true), but this run feeds "
                       f"them unstandardised, so its first layer would see inputs on another scale. Add {set_it('dataset.normalize=true')}.")
    raise ZooError(f"{option('--init', source.label)}: it was trained on unstandardised pixels (dataset.normalize = false), but this run "
                   f"standardises them (e.g. from its recipe), so its first layer would see inputs on another scale. Add {set_it('dataset.normalize=false')}.")


def _check_pin(config: RunConfig, source: Source) -> None:
    if not source.sha256:
        raise ZooError(f"{option('--init', source.label)}: the run has not finished (no weights yet); finish it with {resume_it(source.label)}, then start from it.")
    if config.init_sha256 and config.init_sha256 != source.sha256:
        raise ZooError(f"{option('--init', source.label)}: its weights have SHA-256 {source.sha256[:16]}…, but this run was started from {config.init_sha256[:16]}…; "
                       f"the model changed since. Start a new run to train from the new weights.")


def start_from(model: Any, config: RunConfig, resuming: bool = False, report: bool = True, classes: list[str] | None = None,
               input_shape: tuple[int, ...] | None = None) -> list[str]:
    """Load config.init's weights into `model` (a resumed run loads its checkpoint instead). Returns
    the tensors left at their fresh initialisation (the new head), which are also printed. A head kept for
    other classes of the same number (`classes`: this run's) is said, since its outputs then mean other things."""
    if config.init is None or resuming:
        return []
    from .plugins import load_catalog

    source = open_source(config.init, load_catalog())
    _check_pin(config, source)
    shapes = _source_shapes(source)
    own = model.state_dict()
    mismatches = [(key, why) for key, tensor in own.items() if (why := _mismatch(key, tensor, shapes, source.label))]
    mismatches += [(key, f"is in {source.label} but not in this model") for key in shapes if key not in own]
    head = _head(list(own))
    allowed = [key for key in own if key in head] if config.init_new_head else []  # asked for: fresh even where the shapes agree
    refused = [(key, why) for key, why in mismatches if key not in allowed]
    if refused:
        raise _mismatch_error(config, source, refused, head, input_shape)
    _copy(model, source, [key for key in own if key not in allowed])
    if report:
        loaded = len(own) - len(allowed)
        note = f"; new head, not loaded (fresh initialisation): {', '.join(allowed)}" if allowed else ""
        print(f"Started from {source.label} (SHA-256 {source.sha256[:12]}…): loaded {loaded} of {len(own)} tensors{note}", file=sys.stderr)
        trained_on = source.config.get("classes")
        if not allowed and classes is not None and isinstance(trained_on, list) and trained_on != [str(name) for name in classes]:
            print(f"Note: {source.label}'s final layer was trained on other classes ({', '.join(map(str, trained_on[:3]))}, ...) than this "
                  f"dataset's ({', '.join(map(str, list(classes)[:3]))}, ...) and is kept; add {spoken('--init-new-head', 'init_new_head=True')} to start it fresh.", file=sys.stderr)
    return allowed


def _source_shapes(source: Source) -> dict[str, tuple[list[int], str]]:
    from .store import safetensors_header

    header = safetensors_header(source.weights)
    return {key: (list(entry["shape"]), str(entry.get("dtype"))) for key, entry in header.items() if key != "__metadata__"}


def _mismatch(key: str, tensor: Any, shapes: dict[str, tuple[list[int], str]], label: str) -> str:
    if key not in shapes:
        return f"is not in {label}"
    shape, _ = shapes[key]
    if shape != list(tensor.shape):
        return f"has shape {list(tensor.shape)} here but {shape} in {label}"
    return ""


def _head(keys: list[str]) -> set[str]:
    """The final layer's tensors: those of the module that holds the last tensor."""
    if not keys:
        return set()
    module = keys[-1].rpartition(".")[0]
    return {key for key in keys if key.rpartition(".")[0] == module}


def _mismatch_error(config: RunConfig, source: Source, refused: list[tuple[str, str]], head: set[str],
                    input_shape: tuple[int, ...] | None = None) -> ZooError:
    key, why = refused[0]
    trained = source.config.get("components", {}).get("model", {}).get("name", "?")
    only_head = all(k in head for k, _ in refused)
    trained_on = tuple(source.config.get("input_shape") or ())
    if input_shape is not None and trained_on and trained_on != tuple(input_shape) and not only_head:
        shown = lambda shape: "×".join(map(str, shape))  # noqa: E731
        return ZooError(f"{option('--init', source.label)}: it was trained on inputs of {shown(trained_on)}"
                        f"{' (channels × height × width)' if len(trained_on) == 3 else ''}, "
                        f"but this run's dataset gives {shown(input_shape)}, so its first layer cannot take them (layer {key} {why}); "
                        f"nothing was loaded. Give the dataset that size and those channels (its settings: `zoo show {config.dataset}`), "
                        f"or start from weights trained on inputs like these.")
    hint = (f" If only the number of classes differs, add {spoken('--init-new-head', 'init_new_head=True')}: the final layer then starts "
            f"fresh." if only_head and not config.init_new_head
            else f" {option('--init')} starts from a model of the same architecture; pick one with {spoken('`zoo models`', 'zoo.models()')}.")
    more = f" ({len(refused) - 1} more tensors differ)" if len(refused) > 1 else ""
    return ZooError(f"{option('--init', source.label)}: layer {key} {why}{more}. {source.label} is a {trained}, this run builds {config.model}; nothing was loaded.{hint}")


def _copy(model: Any, source: Source, keys: list[str]) -> None:
    import torch
    from safetensors import SafetensorError, safe_open

    own = model.state_dict()
    try:
        with safe_open(str(source.weights), framework="pt", device="cpu") as weights, torch.no_grad():
            for key in keys:
                tensor = weights.get_tensor(key)
                if not torch.isfinite(tensor).all() if tensor.is_floating_point() else False:
                    raise ZooError(f"{option('--init', source.label)}: tensor {key} holds NaN or infinite values; it cannot start a run.")
                own[key].copy_(tensor)
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ZooError(f"{option('--init', source.label)}: {source.weights} cannot be loaded: {' '.join(str(error).split())}.") from None
