"""A lender's portfolio in one config: named monitors over shared defaults (pure).

Configuration, before any cycle runs. A config file may hold a ``monitors:`` mapping from a
monitor's name (``[a-z0-9_]``, 1 to 64 characters) to the sections that monitor sets for
itself — ``source``, ``simulation``, ``measurement``, ``thresholds``, ``drift_detection``,
``alerts``, ``schedule``, and ``notify.on`` (which events go to which channels). Every other
top-level section (``database``, ``keys``, ``audit``, ``logging``, ``backup``, ``retention``,
``leadership``, ``daemon``, the rest of ``notify``) belongs to the service and is the same
for every monitor; the per-monitor sections at the top level are the shared defaults.

A monitor's document is the defaults deep-merged with its own sections (:func:`deep_merge`):
a mapping overrides key by key, anything else (a list, a number, null) replaces. A mapping
that names a different ``kind`` or ``mode`` than the default's (a ``source`` of another kind,
a drift schedule of another mode) replaces the default whole, since the keys of one kind mean
nothing to another. A file without ``monitors:`` is one monitor named ``default``, read
exactly as before.

An error in a key the monitor set names it under the monitor
(``monitors.auto_loans.thresholds.dir``); an error in a shared default keeps its own key and
says which monitor's document it was found in.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from fairlens_monitor.config.checks import SHOWN_CHARS, mapping, reject_unknown
from fairlens_monitor.config.reader import read_document
from fairlens_monitor.config.settings import Settings, parse_settings, recordable
from fairlens_monitor.errors import ConfigError

DEFAULT_MONITOR = "default"
MONITOR_NAME = re.compile(r"[a-z0-9_]{1,64}")
MAX_MONITORS = 10_000
# The sections a monitor may set for itself; the rest of the file is the service's.
PER_MONITOR = frozenset(
    {
        "source",
        "simulation",
        "measurement",
        "thresholds",
        "drift_detection",
        "alerts",
        "schedule",
        "notify",  # only its ``on`` (the routes); the channels are the service's
    }
)
# The keys of a per-monitor section a monitor may set (the rest of it is the service's).
PER_MONITOR_KEYS = {"notify": frozenset({"on"})}
# A mapping with one of these keys is one variant of several: another value replaces it.
_DISCRIMINATORS = ("kind", "mode")

T = TypeVar("T")


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` onto ``base``: mappings key by key, anything else replaced.

    Args:
        base: the shared default (any parsed YAML value).
        override: the monitor's own value.

    Returns:
        A new value; neither argument is changed. When both are mappings, the result has every
        key of either, each merged recursively — unless they name different variants (a
        different ``kind`` or ``mode``, see the module docstring), when it is ``override``.
        Otherwise ``override``.
    """
    if not (isinstance(base, Mapping) and isinstance(override, Mapping)):
        return override
    for name in _DISCRIMINATORS:
        if name in override and name in base and override[name] != base[name]:
            return dict(override)
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value) if key in base else value
    return merged


def monitor_documents(root: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Split a parsed config file into one complete document per monitor.

    Args:
        root: the parsed top-level mapping of the file.

    Returns:
        ``{name: document}`` in the file's order, each document a config of today's
        single-monitor shape (no ``monitors`` key); ``{"default": root}`` when the file has
        no ``monitors`` section.

    Raises:
        ConfigError: ``monitors`` is not a non-empty mapping, a name is not ``[a-z0-9_]{1,64}``,
            or a monitor sets a section that belongs to the service or is unknown (the key is
            named, e.g. ``monitors.auto_loans.database``).
    """
    if "monitors" not in root:
        return {DEFAULT_MONITOR: dict(root)}
    monitors = mapping(root["monitors"], "monitors")
    if not monitors:
        raise ConfigError("monitors", "empty; name at least one monitor, or leave the key out")
    if len(monitors) > MAX_MONITORS:
        raise ConfigError("monitors", f"at most {MAX_MONITORS} monitors in one config")
    defaults = {k: v for k, v in root.items() if k != "monitors"}
    documents: dict[str, dict[str, Any]] = {}
    for name, own in monitors.items():
        if not isinstance(name, str) or not MONITOR_NAME.fullmatch(name):
            shown = str(name)[:SHOWN_CHARS]
            hint = (
                "; YAML read this one as a number (123): quote it"
                if isinstance(name, int)  # a float has a "." no name has
                else ""
            )
            raise ConfigError(
                f"monitors.{shown}",
                "a monitor's name is 1 to 64 of a-z, 0-9 and _ (it is stored with every "
                f"row){hint}",
            )
        sections = {} if own is None else mapping(own, f"monitors.{name}")
        reject_unknown(sections, f"monitors.{name}", PER_MONITOR)
        for section_name, allowed in PER_MONITOR_KEYS.items():
            if sections.get(section_name) is not None:
                own_keys = mapping(sections[section_name], f"monitors.{name}.{section_name}")
                reject_unknown(own_keys, f"monitors.{name}.{section_name}", allowed)
        document = dict(defaults)
        for section_name, value in sections.items():
            document[section_name] = deep_merge(defaults.get(section_name), value)
        documents[name] = document
    return documents


def parse_monitors(root: Mapping[str, Any], parse: Callable[[dict[str, Any]], T]) -> dict[str, T]:
    """Parse every monitor's document with ``parse``, naming the monitor in any error.

    Args:
        root: the parsed top-level mapping of the file.
        parse: validates one single-monitor document (``config.settings.parse_settings``
            with its folder and environment bound).

    Returns:
        ``{name: parse(document)}`` in the file's order.

    Raises:
        ConfigError: from :func:`monitor_documents`, or from ``parse`` with the key put under
            ``monitors.NAME.`` when the monitor set it, or left as it is, with the monitor
            named as where it was found, when it came from the shared defaults.
    """
    documents = monitor_documents(root)
    if "monitors" not in root:
        return {name: parse(doc) for name, doc in documents.items()}
    own = mapping(root["monitors"], "monitors")
    defaults = {k: v for k, v in root.items() if k != "monitors"}
    parsed: dict[str, T] = {}
    for name, document in documents.items():
        try:
            parsed[name] = parse(document)
        except ConfigError as exc:
            raise _placed(exc, name, own.get(name) or {}, defaults) from None
    return parsed


def load_portfolio(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> dict[str, Settings]:
    """Read and validate every monitor of the config file at ``path``.

    Args:
        path: the YAML config file.
        env: environment to take overrides from; ``os.environ`` when None.

    Returns:
        ``{name: settings}`` in the file's order; ``{"default": ...}`` for a file without
        ``monitors:``, equal to what ``config.settings.load_settings`` returns for it.

    Raises:
        ConfigError: as for ``load_settings`` and :func:`parse_monitors`.
    """
    config_path = Path(path)
    root = mapping(read_document(config_path), "(top level)")
    parse = functools.partial(
        _parse_one,
        base_dir=config_path.resolve().parent,
        env=os.environ if env is None else env,
    )
    return parse_monitors(root, parse)


def _parse_one(document: dict[str, Any], *, base_dir: Path, env: Mapping[str, str]) -> Settings:
    return recordable(parse_settings(document, base_dir=base_dir, env=env))


def _placed(
    exc: ConfigError, monitor: str, own: Mapping[str, Any], defaults: Mapping[str, Any]
) -> ConfigError:
    """The error re-keyed to where the value came from (see :func:`parse_monitors`)."""
    section = exc.key.split(".", 1)[0]
    if section not in PER_MONITOR:
        return exc  # a service section: the same for every monitor
    if _set_by(own, exc.key, defaults):
        return ConfigError(f"monitors.{monitor}.{exc.key}", exc.problem)
    return ConfigError(exc.key, exc.problem, source=f"the shared defaults (monitor {monitor})")


def _set_by(own: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> bool:
    """Whether the monitor's own sections hold ``key`` or the value that contains it.

    A key missing from a mapping the monitor set is the monitor's too when the defaults give
    nothing to merge that mapping with (they lack it, or name another ``kind``/``mode``, so
    the monitor's replaced theirs whole): only the monitor can add it there.
    """
    node: Any = own
    shared: Any = defaults
    for depth, part in enumerate(key.split(".")):
        if not isinstance(node, Mapping):
            return True  # the monitor set a whole value (a list, a number) around the key
        if part not in node:
            return depth > 0 and deep_merge(shared, node) == node
        node = node[part]
        shared = shared.get(part) if isinstance(shared, Mapping) else None
    return True
