"""Discovery and isolation: every plugin, built-in or not, comes from the `zoo` entry-point group (or, to try one
before packaging it, a file named in ZOO_PLUGIN_FILES), loads in its own try/except, and registers through a
callback that records its ownership."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .errors import ZooError, closest, raised_in, strict_plugins, unknown_name
from .presets import Preset, Presets, display
from .registry import IN_PROCESS, KINDS, Component, NameTaken, NoParams, Owner, Registry

GROUP = "zoo"
OWN_DISTRIBUTION = "zoo"
FILE_VERSION = "(file)"  # the version of a plugin loaded from ZOO_PLUGIN_FILES; its distribution is the file's path


@dataclass
class PluginInfo:
    """What `zoo plugins` reports about one entry point."""

    name: str
    distribution: str
    version: str
    builtin: bool
    status: str = "loaded"  # loaded | failed | conflicting | disabled | not-selected
    hooks: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    digest: str | None = None  # a ZOO_PLUGIN_FILES plugin's: SHA-256 (16 hex digits) of the code imported, as config.json records it

    @property
    def owner(self) -> Owner:
        return Owner(self.name, self.distribution, self.version)

    @property
    def source(self) -> str:
        """Where it came from, for a message: "zoo-convnets 0.2.0", a file's path, or "in-process"."""
        return "in-process" if self.distribution == IN_PROCESS else f"{self.distribution} {self.version}"

    def fail(self, message: str) -> None:
        """Something of this plugin did not load (an import, a hook, a malformed register call)."""
        self.status = "failed"
        self.errors.append(message)

    def conflict(self, message: str) -> None:
        """It loaded, but a name of it is refused or shared with another plugin."""
        if self.status == "loaded":
            self.status = "conflicting"
        if message not in self.errors:
            self.errors.append(message)


@dataclass(frozen=True)
class Resolved:
    """A user-facing name turned into the component that builds it and the params it implies."""

    name: str
    component: Component
    params: dict[str, Any]
    preset: str | None


@dataclass
class Catalog:
    """Everything the loaded plugins and registry files provide."""

    registry: Registry
    presets: Presets
    plugins: list[PluginInfo]
    trained_models: list[tuple[str, Path]] = field(default_factory=list)
    """(plugin name, folder of trained models) from register_trained_models (zoo.store reads them)."""
    warnings: list[str] = field(default_factory=list)
    """ZOO_LOAD_PLUGINS/ZOO_DISABLE_PLUGINS names that match no plugin."""

    def names(self, kind: str) -> list[str]:
        """What `zoo list KIND` names: the components of a kind (model, dataset, ...) and its presets (mlp-<width>)."""
        return self.registry.names(kind) + [display(p) for p in self.presets.names(kind)]

    def __repr__(self) -> str:
        """One line per kind for a notebook's echo (the whole registry is thousands of characters)."""
        kinds = "\n".join(f"  {kind}{'es' if kind.endswith('s') else 's'}: {', '.join(self.names(kind)) or '-'}" for kind in KINDS)
        loaded = sum(p.status == "loaded" for p in self.plugins)
        return f"Catalog({loaded} of {len(self.plugins)} plugins loaded; recipes: {', '.join(self.presets.recipes)}\n{kinds})"

    def resolve(self, kind: str, name: str) -> Resolved:
        """An exact component name, else a preset (exact, then a pattern such as mlp-{width})."""
        preset = self.presets.find(kind, name)
        if self.registry.has(kind, name):
            if preset and preset[0] == name:
                source = self.presets.presets[kind][name].source
                raise ZooError(
                    f"{kind.capitalize()} {name!r} is both a component ({self.registry.get(kind, name).owner}) "
                    f"and a preset in {source}; rename the preset."
                )
            return Resolved(name, self.registry.get(kind, name), {}, None)
        if preset is None:
            error = unknown_name(kind, name, self.names(kind))
            broken = [f"{p.name} ({p.source})" for p in self.failed_plugins()]
            if broken:  # the name may belong to a plugin that could not load
                error.args = (f"{error.args[0]} Note: plugin(s) {', '.join(broken)} failed to load; `zoo plugins` shows why.",)
            warned = [f"{p.name} ({p.warnings[0].rstrip('.')})" for p in self.plugins if p.warnings and p.status == "loaded"]
            if warned:  # or to one whose hook zoo ignored (misnamed, unmarked, returning instead of registering)
                error.args = (f"{error.args[0]} Note: {'; '.join(warned)}.",)
            raise error
        preset_name, value = preset
        if not self.registry.has(kind, value.component):
            source = self.presets.presets[kind][preset_name].source
            hint = closest(value.component, self.registry.names(kind))
            raise ZooError(
                f"{kind.capitalize()} preset {preset_name!r} (in {source}) builds {kind} {value.component!r}, "
                f"which no loaded plugin provides{f' (did you mean {hint}?)' if hint else ''}. Run `zoo plugins` to see which plugins loaded."
            )
        return Resolved(name, self.registry.get(kind, value.component), dict(value.params), preset_name)

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "failed"]


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def normalize_distribution(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def shipped_registry() -> Path:
    """The top-level registry.toml: a copy inside the wheel, a symlink in a checkout."""
    return Path(str(importlib.resources.files("zoo") / "registry.toml"))


def load_catalog(
    *,
    env: Mapping[str, str] | None = None,
    registry_files: Iterable[str | Path] = (),
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> Catalog:
    """Load every allowed plugin and registry file. One broken plugin is recorded, not raised,
    unless ZOO_STRICT_PLUGINS=1."""
    env = os.environ if env is None else env
    registry_files = _file_list(registry_files)
    strict = strict_plugins(env)
    allowed = _names(env.get("ZOO_LOAD_PLUGINS"))
    disabled = _names(env.get("ZOO_DISABLE_PLUGINS")) or set()
    extra_plugins = list(extra_plugins)
    in_process = {name for name, _ in extra_plugins} | {getattr(plugin, "__name__", None) for _, plugin in extra_plugins}

    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    loaded: list[tuple[PluginInfo, object]] = []

    def attach(info: PluginInfo, load: Callable[[], object], module: str = "") -> None:
        infos.append(info)
        try:
            plugin = load()
            _not_loaded_already(manager, plugin)
            manager.register(plugin, name=info.name)
        except (Exception, SystemExit) as error:  # sys.exit() in a plugin ends that plugin, not zoo
            if strict:
                raise
            info.fail(f"import failed: {type(error).__name__}: {error}{raised_in(error, module)}")
            return
        info.hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [] if caller.name in KNOWN_HOOKS)
        info.warnings += unknown_hooks(plugin, manager)
        loaded.append((info, plugin))

    replaced: dict[str, PluginInfo] = {}
    for ep in _sorted_entry_points():
        info = _entry_point_info(ep)
        if ep.name in in_process or ep.module in in_process:  # the in-process copy stands in for the installed one
            replaced[ep.name] = replaced.get(ep.module, info)
            replaced[ep.module] = info
        elif _selected_by(ep.name, info.distribution, disabled):
            info.status = "disabled"
            infos.append(info)
        elif not info.builtin and allowed is not None and not _selected_by(ep.name, info.distribution, allowed):
            info.status = "not-selected"
            infos.append(info)
        else:
            attach(info, ep.load, ep.module)
    files, file_warnings = _file_plugins(env, infos, disabled)
    for info, load in files:
        attach(info, load, info.name) if load else infos.append(info)
    for name, plugin in extra_plugins:
        attach(_in_process_info(name, plugin, manager, replaced), lambda plugin=plugin: plugin)
    warnings = _unmatched(env, {"ZOO_LOAD_PLUGINS": allowed or set(), "ZOO_DISABLE_PLUGINS": disabled}, infos) + file_warnings

    catalog = _catalog(manager, infos, loaded, strict, [p for p in env.get("ZOO_REGISTRY", "").split(os.pathsep) if p] + list(registry_files))
    catalog.warnings += warnings
    return catalog


def _not_loaded_already(manager: pluggy.PluginManager, plugin: object) -> None:
    """The same module a second time (an installed plugin's own folder in ZOO_PLUGIN_FILES), said in one line: pluggy's
    own error lists every plugin object."""
    if (same := manager.get_name(plugin)) is not None:
        where = getattr(plugin, "__file__", None) or repr(plugin)
        raise ImportError(f"it is plugin {same!r}, already loaded from the same code ({where}); leave it out of ZOO_PLUGIN_FILES")


def _file_list(files: Any) -> list[str | Path]:
    """registry_files= as the API takes it: a list of paths, or one path (not a string's characters)."""
    if isinstance(files, (str, Path)):
        return [files]
    try:
        files = list(files)
    except TypeError:
        files = [files]
    for file in files:
        if not isinstance(file, (str, Path)):
            raise ZooError(f"registry_files: {file!r:.60} is not a path; give one path or a list of them (as --registry FILE).")
    return files


def _in_process_info(name: str, plugin: object, manager: pluggy.PluginManager, replaced: dict[str, PluginInfo]) -> PluginInfo:
    """An extra plugin's entry: as the installed plugin it stands in for, if any; its name must be free."""
    if manager.has_plugin(name):  # the caller's own mistake, not a broken package: say it rather than record it
        raise ZooError(f"extra_plugins: a plugin called {name!r} is loaded already (from ZOO_PLUGIN_FILES); give yours another "
                       f"name with a (name, plugin) pair, or leave the file out of ZOO_PLUGIN_FILES.")
    installed = replaced.get(name) or replaced.get(getattr(plugin, "__name__", ""))
    return PluginInfo(name, installed.distribution, installed.version, installed.builtin) if installed else PluginInfo(name, IN_PROCESS, "-", builtin=False)


def _entry_point_info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    distribution = dist.metadata["Name"] if dist else "(unknown)"
    return PluginInfo(ep.name, distribution, dist.version if dist else "?", normalize_distribution(distribution) == OWN_DISTRIBUTION)


def _file_plugins(env: Mapping[str, str], loaded: list[PluginInfo], disabled: set[str]) -> tuple[list[tuple[PluginInfo, Callable[[], object] | None]], list[str]]:
    """ZOO_PLUGIN_FILES: each plugin named by the file's (or package folder's) name, with what imports it (None:
    disabled by ZOO_DISABLE_PLUGINS), and warnings for a name already loaded (e.g. the same plugin, installed since)."""
    found: list[tuple[PluginInfo, Callable[[], object] | None]] = []
    warnings = []
    for path in dict.fromkeys(_plugin_path(p) for p in env.get("ZOO_PLUGIN_FILES", "").split(os.pathsep) if p):
        module = path.name if path.is_dir() else path.stem
        info = PluginInfo(module, str(path), FILE_VERSION, builtin=False)
        taken = next((i for i in loaded if i.name == module and i.status == "loaded"), None)  # a disabled or broken one leaves the name free
        if taken is not None:
            warnings.append(f"ZOO_PLUGIN_FILES names {path}, but a plugin named {module!r} is already loaded "
                            f"({taken.distribution} {taken.version}); the file is left out: rename it, or uninstall the other.")
            continue
        info.status = "disabled" if module in disabled else info.status
        found.append((info, None if module in disabled else (lambda info=info, path=path, module=module: _import_noting(info, path, module))))
    return found, warnings


def _plugin_path(text: str) -> Path:
    """The file as the shell finds it (its folder's links and .. resolved), under its own name (a linked file keeps it);
    a package's __init__.py stands for its folder."""
    path = Path(text).expanduser().absolute()
    if path.name == "__init__.py":  # a package named by its __init__.py is the package, not a plugin called __init__
        path = path.parent
    return path.parent.resolve() / path.name


def file_digest(path: Path) -> str:
    """SHA-256 (16 hex digits) of a plugin file, or of a package folder's .py files in order."""
    import hashlib

    digest = hashlib.sha256()
    for file in _sources(path):
        try:
            digest.update(file.read_bytes())
        except OSError:
            continue
    return digest.hexdigest()[:16]


def _sources(path: Path) -> list[Path]:
    """A plugin file, or a package folder's .py files in order."""
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _import_noting(info: PluginInfo, path: Path, module: str) -> object:
    loaded = _import_file(path, module)
    info.digest = getattr(loaded, "__zoo_digest__", None)
    return loaded


def _import_file(path: Path, module: str) -> object:
    """A plugin as a file (my_models.py) or a package folder, imported under its own name, so that a plugin can be
    tried before it has a pyproject.toml; it must not shadow a module already imported (json.py, zoo.py). A file
    edited since this process imported it (a notebook) is imported again, as it now is: a run must train, and record,
    the code in the file."""
    source = path / "__init__.py" if path.is_dir() else path
    if not source.is_file():
        raise ImportError(f"{path} is not a Python file or a package folder (with __init__.py)")
    digest = file_digest(path)
    existing = sys.modules.get(module)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() != source.resolve():
            raise ImportError(f"a module named {module!r} is already imported (from {getattr(existing, '__file__', None) or 'built in'}); rename {path.name}")
        if getattr(existing, "__zoo_digest__", digest) == digest:
            return existing
        _forget(module)
        _drop_bytecode(path)  # an edit within the same second, of the same size, would pass the .pyc's check
    try:
        other = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        other = None
    if other is not None and other.origin and Path(other.origin).resolve() != source.resolve():  # `import rich` would find the file
        raise ImportError(f"a module named {module!r} is installed ({other.origin}), and the file would hide it; rename {path.name}")
    spec = importlib.util.spec_from_file_location(module, source, submodule_search_locations=[str(path)] if path.is_dir() else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as Python")
    loaded = importlib.util.module_from_spec(spec)
    loaded.__zoo_digest__ = digest  # type: ignore[attr-defined]
    sys.modules[module] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        _forget(module)  # with the submodules it imported before failing: the next import starts clean
        raise
    return loaded


def _drop_bytecode(path: Path) -> None:
    """The cached bytecode of a plugin file (or package): Python trusts a .pyc whose source has the same size and
    modification second, so an edit made quickly would otherwise import the code from before it."""
    for source in _sources(path):
        Path(importlib.util.cache_from_source(str(source))).unlink(missing_ok=True)


def _forget(module: str) -> None:
    """`module` and its submodules out of sys.modules, so that importing it again runs the files as they are now."""
    for name in [name for name in sys.modules if name == module or name.startswith(module + ".")]:
        del sys.modules[name]


def _selected_by(name: str, distribution: str, names: set[str]) -> bool:
    """An entry point is named by its entry-point name or its distribution's (any spelling)."""
    return name in names or normalize_distribution(distribution) in {normalize_distribution(n) for n in names}


def _unmatched(env: Mapping[str, str], lists: dict[str, set[str]], infos: list[PluginInfo]) -> list[str]:
    """A name in ZOO_LOAD_PLUGINS/ZOO_DISABLE_PLUGINS that names no plugin is most likely a typo: say so."""
    known = {i.name for i in infos} | {i.distribution for i in infos}
    warnings = []
    for variable, names in lists.items():
        for name in sorted(names):
            if not any(_selected_by(i.name, i.distribution, {name}) for i in infos):
                hint = closest(name, known)
                warnings.append(f"{variable} names {name!r}, which is no installed plugin (entry point or distribution)"
                                + (f"; did you mean {hint}?" if hint else "; `zoo plugins` lists them."))
    return warnings


KNOWN_HOOKS = {name for name in dir(hookspecs) if name.startswith("register_")}


def unknown_hooks(plugin: object, manager: pluggy.PluginManager) -> list[str]:
    """register_* attributes that are no zoo hook (a typo such as register_model is otherwise ignored
    in silence): pluggy's pending hooks, and unmarked functions named like hooks."""
    names = {caller.name for caller in manager.get_hookcallers(plugin) or [] if not caller.has_spec()}
    names |= {name for name in dir(plugin) if name.startswith("register_") and callable(getattr(plugin, name, None))}
    warnings = []
    for name in sorted(names - KNOWN_HOOKS):
        hint = closest(name, KNOWN_HOOKS)
        warnings.append(f"{name} is not a zoo hook and is ignored" + (f"; did you mean {hint}?" if hint else f"; the hooks are {', '.join(sorted(KNOWN_HOOKS))}."))
    for name in sorted(names & KNOWN_HOOKS):
        if not any(c.name == name for c in manager.get_hookcallers(plugin) or []):
            warnings.append(f"{name} is not marked @zoo.hookimpl and is ignored; decorate it with @zoo.hookimpl.")
    return warnings


def _catalog(manager: pluggy.PluginManager, infos: list[PluginInfo], loaded: list[tuple[PluginInfo, object]], strict: bool,
             registry_files: list[str | Path]) -> Catalog:
    """What the loaded plugins register, then the registry files; a name two plugins claim fails both."""
    registry = Registry()
    presets = Presets()
    presets.load_file(shipped_registry())
    trained: list[tuple[str, Path]] = []
    for info, plugin in loaded:
        _register_components(manager, plugin, info, registry, strict)
        _register_presets(manager, plugin, info, presets, strict)
        _register_trained_models(manager, plugin, info, trained, strict)
    for (kind, name), owners in registry.conflicts.items():
        message = str(registry.conflict_error(kind, name))
        for info in infos:
            if info.owner in owners:
                info.conflict(message)
    for path in registry_files:
        presets.load_file(path)
    _preset_clashes(registry, presets, infos, strict)
    return Catalog(registry, presets, infos, trained)


def _preset_clashes(registry: Registry, presets: Presets, infos: list[PluginInfo], strict: bool) -> None:
    """A plugin's component named like a preset: zoo's presets win (the component is refused);
    otherwise the name is ambiguous and both owners are told, at load rather than at the first run."""
    shipped = str(shipped_registry())
    by_owner = {info.owner: info for info in infos}
    for kind in KINDS:
        for component in [c for c in registry.qualified[kind].values() if not c.owner.builtin]:
            found = presets.find(kind, component.name)
            if found is None:
                continue
            source = presets.presets[kind][found[0]].source
            if source == shipped:
                message = (f"{component.owner} registers the {kind} {component.name!r}, which is zoo's own preset "
                           f"{display(found[0])!r} (in {source}); zoo keeps its preset and refuses the component. Rename it in that plugin.")
                if strict:
                    raise NameTaken(message)
                registry.remove(component)
            elif found[0] == component.name:
                message = (f"The {kind} {component.name!r} of {component.owner} is also a preset in {source}; "
                           f"using the name is an error until one of them is renamed.")
            else:
                continue
            if component.owner in by_owner:
                by_owner[component.owner].conflict(message)


def _sorted_entry_points() -> list[EntryPoint]:
    """Built-ins first, then the rest by name, so listings and errors come out stable."""
    eps = entry_points(group=GROUP)
    return sorted(eps, key=lambda ep: (not (ep.dist and normalize_distribution(ep.dist.metadata["Name"]) == OWN_DISTRIBUTION), ep.name))


def _impls(manager: pluggy.PluginManager, plugin: object, hook_name: str) -> list[Callable[..., Any]]:
    caller = getattr(manager.hook, hook_name)
    return [impl.function for impl in caller.get_hookimpls() if impl.plugin is plugin]


def _register_components(
    manager: pluggy.PluginManager, plugin: object, info: PluginInfo, registry: Registry, strict: bool
) -> None:
    for hook_name, kind in hookspecs.COMPONENT_HOOKS.items():
        for function in _impls(manager, plugin, hook_name):

            def register(
                name: str,
                factory: Callable[..., Any],
                params: type[BaseModel] = NoParams,
                help: str | None = None,
                kind: str = kind,
            ) -> None:
                description = help if help is not None else (factory.__doc__ or "").strip().split("\n")[0]
                component = Component(kind, name, factory, params, description, info.owner)
                try:
                    registry.add(component)
                except NameTaken as error:
                    if strict:
                        raise
                    info.conflict(str(error))
                    return
                except ZooError as error:
                    if strict:
                        raise
                    info.fail(str(error))
                    return
                info.components.append(f"{kind}:{name}")

            _call(function, hook_name, register, info, strict)


def _call(function: Callable[..., Any], hook_name: str, register: Callable[..., Any], info: PluginInfo, strict: bool) -> None:
    """One plugin's hook with its register callback; what it raises marks that plugin, not zoo.
    A hook that returns its components instead of registering them is told so (they would vanish in silence)."""
    try:
        returned = function(register=register)
    except (Exception, SystemExit) as error:
        if strict:
            raise
        info.fail(f"{hook_name} failed: {type(error).__name__}: {error}{raised_in(error, function)}")
        return
    if returned is not None:
        info.warnings.append(f"{hook_name} returned {type(returned).__name__}, which zoo ignores: a hook registers each of its "
                             f"things by calling register(...) (e.g. register(\"my-model\", build, params=MyParams)) and returns nothing; see docs/plugins.md.")


def _register_presets(
    manager: pluggy.PluginManager, plugin: object, info: PluginInfo, presets: Presets, strict: bool
) -> None:
    for function in _impls(manager, plugin, "register_presets"):
        _call(function, "register_presets", presets.load_file, info, strict)


def _register_trained_models(
    manager: pluggy.PluginManager, plugin: object, info: PluginInfo, trained: list[tuple[str, Path]], strict: bool
) -> None:
    def register(path: str | Path) -> None:
        if not Path(path).is_dir():
            raise ZooError(f"{path} is not a folder of trained models")
        trained.append((info.name, Path(path)))

    for function in _impls(manager, plugin, "register_trained_models"):
        _call(function, "register_trained_models", register, info, strict)


__all__ = ["Catalog", "PluginInfo", "Resolved", "load_catalog", "KINDS", "Preset"]
