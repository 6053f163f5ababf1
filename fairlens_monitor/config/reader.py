"""Read ``config.yaml`` into a plain document, safely: the first step of the config boundary.

:mod:`fairlens_monitor.config.settings` validates the document this module returns. Here only the
file itself is checked, so hostile bytes stop with one line before anything else runs: the
file must be at most :data:`MAX_CONFIG_BYTES`, UTF-8, and YAML whose aliases expand to at
most :data:`MAX_NODES` nodes nested at most :data:`MAX_DEPTH` deep (a "billion laughs"
document of a kilobyte would otherwise expand to billions of nodes), with no key twice in one
mapping. YAML's own multi-line error becomes one line with the line and column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fairlens_monitor.errors import ConfigError
from fairlens_monitor.security.safefiles import read_regular

MAX_CONFIG_BYTES = 1 << 20  # a config is a few kilobytes; a megabyte is a wrong file
MAX_NODES = 100_000  # YAML nodes after alias expansion
MAX_DEPTH = 64  # nesting of mappings and lists
BOOL_TAG, STR_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:str"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a key shown in an error; others are not quoted


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document that expands beyond the bounds above."""

    def construct_document(self, node: yaml.Node) -> Any:
        """Check the composed document's expanded size and depth, then construct it.

        Raises:
            ConfigError: too many nodes after alias expansion, or nested too deeply.
        """
        _expanded_size(node, {}, 0)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Construct a mapping, refusing a key written twice in it.

        A plain key that YAML 1.1 would read as a boolean (``on``, ``off``, ``yes``, ``no``,
        ``y``, ``n``, ``true``, ``false`` in any case) stays the text written: ``notify.on``
        is a key, and so is a monitor named ``no``. Values are unchanged (``enabled: yes``
        is still true).

        YAML keeps the last of two equal keys, so a monitor pasted twice under one name (or
        a threshold set twice) would silently drop the first. Keys brought in by a merge
        (``<<``) are not compared: a key beside a merge overrides it, as YAML means.

        Raises:
            ConfigError: a key appears twice; the message gives its line and column.
        """
        for key_node, _value in node.value:
            if (
                isinstance(key_node, yaml.ScalarNode)
                and key_node.tag == BOOL_TAG
                and key_node.style is None
            ):  # YAML 1.1 reads a plain `on:`, `no:`, `yes:` key as a boolean; no key is one
                key_node.tag = STR_TAG
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                mark = key_node.start_mark
                shown = f"'{key}'" if _NAME.fullmatch(str(key)) else "a key"
                raise ConfigError(
                    "--config",
                    f"line {mark.line + 1}, column {mark.column + 1}: the key {shown} appears "
                    "twice in one mapping (YAML would keep only the last); remove or rename one",
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int) -> int:
    """Nodes under ``node`` with every alias expanded; each shared node is counted once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if depth > MAX_DEPTH:
        raise ConfigError(
            "--config", f"nested more than {MAX_DEPTH} levels deep; a config needs a few"
        )
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, depth + 1)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes, depth + 1)
            total += _expanded_size(value, sizes, depth + 1)
    if total > MAX_NODES:
        raise ConfigError(
            "--config",
            f"expands to more than {MAX_NODES:,} values (YAML "
            "aliases repeated inside each other); write the values out",
        )
    sizes[id(node)] = total
    return total


def read_document(path: Path) -> Any:
    """Return the parsed YAML document in ``path``.

    Args:
        path: the config file.

    Returns:
        The document (any YAML value; the caller checks its shape).

    Raises:
        ConfigError: the file is missing, not a regular file, unreadable, larger than
            ``MAX_CONFIG_BYTES``, not UTF-8, not valid YAML, nested too deeply, or expanding
            past ``MAX_NODES``. The message is one line and quotes no content of the file.
    """
    try:  # a FIFO or device is refused, not waited on or read for ever
        data = read_regular(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {path} not found") from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            "--config", f"{path} is larger than {MAX_CONFIG_BYTES:,} bytes; is it the config file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "--config",
            f"{path} is not UTF-8 text (byte {exc.start:,} cannot "
            "be decoded); is it the config file?",
        ) from None
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = (exc.problem or exc.context or "syntax error").strip()
        raise ConfigError(
            "--config", f"{path} is not valid YAML{where}: {' '.join(problem.split())[:80]}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path} is not valid YAML: {type(exc).__name__}") from None
    except RecursionError:
        raise ConfigError(
            "--config", f"{path} is nested too deeply to read (at most {MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:  # e.g. a date such as 2026-13-45 that YAML types as a date
        raise ConfigError(
            "--config",
            f"{path} holds a value YAML cannot construct "
            f"({type(exc).__name__}); quote it as a string",
        ) from None
