"""Hypothesis strategies of the hostile-input fuzz test: command lines, config trees, CSV bytes.

- Commands are enumerated from the click group (:func:`commands`), so a new command is fuzzed
  without a change here; their arguments come from each parameter's click type.
- Config keys are enumerated from ``config.yaml`` and from ``config.py`` itself
  (:func:`schema_keys` plants an unknown key in each section and reads the "allowed here"
  list its validator answers with).
- CSV files carry PII canaries in headers and in cells (never in the group column, whose values
  are legitimately shown as group names).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import click
import yaml
from hypothesis import strategies as st

from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import parse_settings
from fairlens_monitor.errors import ConfigError
from tests.fuzz_support import CONFIG_CANARIES, DATA_CANARIES, PW_URL
from tests.helpers.commands import subcommands

REPO = Path(__file__).resolve().parent.parent
# The demo config's shared defaults: a complete single-monitor document (its `monitors:`
# section is exercised by tests/test_monitors_config.py and tests/test_portfolio_cli.py).
REAL_CONFIG: dict[str, Any] = {
    k: v for k, v in yaml.safe_load((REPO / "config.yaml").read_text()).items() if k != "monitors"
}
FILE_SOURCE = {
    "kind": "file",
    "path": "data/*.csv",
    "outcome": "approved",
    "stratum": "credit_score",
    "timestamp": "decided_at",
}
SQL_SOURCE = {
    "kind": "sql",
    "url": "sqlite:///data/src.db",
    "table": "decisions",
    "outcome": "approved",
}
# Paths a command may read; anything else may be written, so gets sandbox paths only (a root
# process replacing /dev/null or /dev/zero through os.replace would break the machine).
READ_PARAMS = {"file", "src", "config_path", "anchor_file", "public_key"}
SAFE_PATHS = [
    "out.file",
    "var",
    "adir",
    "missing/deep/x.db",
    "../outside/secret.txt",
    "link-secret",
    "link-dir",
    "link-fifo",
    "../outside/fifo",
    "~/x",
    "",
    "/sys/fuzz/x.db",
    "/proc/fuzz/x",
    "x" * 5000,
    "ünï cödé 🙂.db",
    " ",
    "-",
]
READ_ONLY_PATHS = [
    "/dev/null",
    "/dev/zero",
    "/proc/version",
    "var/fairlens.db",
    "var/anchor.jsonl",
    "var/keys/fernet.key",
    "config.yaml",
    "data",
]
HOSTILE_TEXT = [
    "",
    " ",
    "-",
    "--",
    "\n",
    "x" * 100_000,
    "é\u202e\u200b",
    "🙂" * 500,
    "'; DROP TABLE runs; --",
    "%s%n{0}",
    "\x1b[31mred",
    "../../outside",
    CONFIG_CANARIES[0],
    CONFIG_CANARIES[1],
    PW_URL,
]
HOSTILE_NUMBERS = [
    "0",
    "-1",
    "-0",
    "1e300",
    "1e-300",
    "nan",
    "inf",
    "-inf",
    "1",
    "2",
    str(10**30),
    "0x10",
    "1_000",
    " 1",
    "1.5",
    "-9223372036854775809",
]
DB_URLS = [
    "sqlite:///var/fairlens.db",
    "sqlite:///copy.db",
    "sqlite:////sys/fuzz/x.db",
    "sqlite://",
    "sqlite:///:memory:",
    "mysql://u:pw@127.0.0.1:1/x",
    "nosuch://x",
    PW_URL,
    "sqlite:///link-secret",
    "sqlite:///adir",
]


def commands(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command path of the CLI (groups too: they may be invoked without a command)."""
    found = []
    for name, command in subcommands(group).items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
    return found


def _param_values(param: click.Parameter) -> st.SearchStrategy[str]:
    kind = param.type
    if isinstance(kind, click.Choice):
        return st.sampled_from([*map(str, kind.choices), "nope", ""])
    if isinstance(kind, click.types._NumberParamTypeBase):
        return st.sampled_from(HOSTILE_NUMBERS) | st.integers(-(2**70), 2**70).map(str)
    if isinstance(kind, click.Path):
        safe = SAFE_PATHS + (READ_ONLY_PATHS if param.name in READ_PARAMS else [])
        return st.sampled_from(safe)
    if param.name and "url" in param.name:
        return st.sampled_from(DB_URLS + HOSTILE_TEXT)
    return st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40).filter(lambda t: "\0" not in t)


@st.composite
def command_line(draw: st.DrawFn, path: tuple[str, ...], command: click.Command) -> list[str]:
    """Arguments for ``command``: every parameter from its click type, plus hostile extras."""
    args: list[str] = list(path)
    for param in command.params:
        if isinstance(param, click.Option):
            if param.name == "help" or not (param.required or draw(st.booleans())):
                continue
            name = max(param.opts, key=len)
            if param.is_flag:
                args.append(name)
                continue
            for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
                args += [name, draw(_param_values(param))]
        elif isinstance(param, click.Argument):
            args.append(
                "-" if path[-1] == "decrypt" and draw(st.booleans()) else draw(_param_values(param))
            )
    if path[0] == "run":  # a daemon: one or two cycles, never an endless one
        args += ["--cycles", draw(st.sampled_from(["1", "2", "0", "-1", "nan", "1e300"]))]
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from(["--bogus", "extra", "--json=1", "--", "--help"])))
    return args


def leaf_paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    if isinstance(tree, dict) and tree:
        return [p for k, v in tree.items() for p in leaf_paths(v, (*prefix, str(k)))]
    return [".".join(prefix)]


def _allowed(doc: dict[str, Any], at: tuple[str, ...], base_dir: Path) -> set[str]:
    """The keys the validator allows at ``at`` in ``doc`` (from its unknown-key error)."""
    probe = copy.deepcopy(doc)
    set_path(probe, (*at, "__probe__"), 1)
    try:
        parse_settings(probe, base_dir=base_dir, env={})
    except ConfigError as exc:
        found = re.search(r"allowed here: ([\w, ]+)", str(exc))
        if found and exc.key == ".".join((*at, "__probe__")):
            return set(found.group(1).split(", "))
    return set()


def schema_keys(base_dir: Path) -> list[str]:
    """Every config key: the leaves of config.yaml and every key ``config.py`` allows."""
    keys = set(leaf_paths(REAL_CONFIG))
    for section in _allowed(REAL_CONFIG, (), base_dir):
        for preset in (None, FILE_SOURCE, SQL_SOURCE):
            doc = with_preset(copy.deepcopy(REAL_CONFIG), section, preset)
            keys |= {f"{section}.{k}" for k in _allowed(doc, (section,), base_dir)}
    for drift in (REAL_CONFIG["simulation"]["drift"], {"mode": "constant", "level": 0.0}):
        doc = copy.deepcopy(REAL_CONFIG)
        doc["simulation"]["drift"] = dict(drift)
        keys |= {f"simulation.drift.{k}" for k in _allowed(doc, ("simulation", "drift"), base_dir)}
    return sorted(k for k in keys if k.count(".") or k not in ("source",))


def with_preset(
    doc: dict[str, Any], key: str, preset: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``doc`` made ready for mutating ``key``: its section present and reachable."""
    top = key.split(".")[0]
    if top == "source" or (preset is not None and top == "source"):
        sql = preset is SQL_SOURCE or key.split(".")[-1] in ("url", "table", "query")
        doc["source"] = dict(preset or (SQL_SOURCE if sql else FILE_SOURCE))
        doc["measurement"] = {**doc["measurement"], "label": None}
    elif top == "backup":
        doc["backup"] = {"dir": "var/backups"}
    if key.startswith("simulation.drift.level"):
        doc["simulation"]["drift"] = {"mode": "constant", "level": 0.0}
    return doc


def set_path(doc: dict[str, Any], path: tuple[str, ...] | list[str], value: Any) -> None:
    node = doc
    for name in path[:-1]:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


DELETE = object()
RAW = "FUZZRAW"  # replaced by raw YAML text after dumping (aliases, bombs, deep nesting)
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    -0.0,
    10**30,
    2**63,
    1e300,
    -1e300,
    1e-300,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    " ",
    "1",
    "0x10",
    "nan",
    "x" * 100_000,
    "\0",
    "a\0b",
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": None}},
    b"\x00\xff binary",
    CONFIG_CANARIES[0],
    CONFIG_CANARIES[1],
    PW_URL,
    "mysql://u:pw@127.0.0.1:1/x",
    "sqlite:////sys/fuzz/x.db",
    "/sys/fuzz/x",
    "/proc/fuzz/x",
    "~/fuzz",
    "../outside",
    "link-secret",
    "link-dir",
    "../outside/fifo",
    "data/*.csv",
    "../outside/*",
    "/etc/*",
    "1h",
    "-1h",
    "0s",
    "1e300d",
    "SELECT 1 -- c",
    "SELECT ';' AS x",
    "DEBUG",
    "ramp",
    "constant",
    "file",
    "sql",
]
scalars = (
    st.sampled_from(HOSTILE_VALUES)
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def raw_yaml(draw: st.DrawFn) -> str:
    """A YAML value written as text: a billion-laughs alias bomb, deep nesting, merge keys."""
    kind = draw(st.sampled_from(["bomb", "deep", "merge", "tag", "alias"]))
    if kind == "bomb":
        width = draw(st.integers(2, 10))
        depth = draw(st.integers(2, 6 if width <= 10 else 5))
        parts = ["&l0 [" + ",".join(["lol"] * width) + "]"]
        parts += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
        return "[" + ", ".join(parts) + "]"
    if kind == "deep":
        n = draw(st.sampled_from([50, 1000, 20_000, 100_000]))
        return "[" * n + "]" * n
    if kind == "merge":
        return "{<<: {a: 1}, b: &x 2, c: *x}"
    if kind == "tag":
        return draw(
            st.sampled_from(
                [
                    "!!python/object:os.system {}",
                    "!!binary AAAA",
                    "!!timestamp 2026-01-01",
                    "!!set {a, b}",
                    "!!float nan",
                ]
            )
        )
    return "*undefined"


@st.composite
def config_text(draw: st.DrawFn, keys: list[str]) -> tuple[bytes, str]:
    """A hostile config file (bytes) and a label naming what was mutated."""
    doc = copy.deepcopy(REAL_CONFIG)
    doc["simulation"]["n_samples"] = 300
    whole = draw(st.integers(0, 9))
    if whole == 0:  # the file itself is hostile
        kind = draw(st.sampled_from(["binary", "list", "scalar", "empty", "bom", "dupe"]))
        text = yaml.safe_dump(doc).encode()
        return {
            "binary": draw(st.binary(min_size=1, max_size=200)) + b"\xff\xfe",
            "list": b"- a\n- b\n",
            "scalar": b"42\n",
            "empty": b"",
            "bom": b"\xef\xbb\xbf" + text,
            "dupe": text + b"database: {url: x}\n",
        }[kind], f"yaml:{kind}"
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True))
    raw = None
    for i, key in enumerate(chosen):
        doc = with_preset(doc, key)
        if i == 0 and draw(st.integers(0, 4)) == 0:
            raw = draw(raw_yaml())
            set_path(doc, key.split("."), RAW)
        else:
            set_path(doc, key.split("."), draw(st.just(DELETE) | values))
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans())).encode("utf-8", "replace")
    if raw is not None:
        text = text.replace(RAW.encode(), raw.encode(), 1)
    if draw(st.integers(0, 19)) == 0:  # invalid UTF-8 inside a value
        text = text.replace(b"Male", b"M\xe4le\xff", 1)
    return text, ",".join(chosen) + (" (raw)" if raw else "")


CELLS = {
    "gender": ["Male", "Female", "Female", "Male", "", "X", "ünï", "NA", "a,b"],
    "approved": ["0", "1", "1", "0", "yes", "no", "", "2", "1.0", "nan", *DATA_CANARIES],
    "repaid": ["0", "1", "", "true", "maybe", *DATA_CANARIES],
    "credit_score": ["700", "650.5", "", "-1", "1e309", "high", *DATA_CANARIES],
    "decided_at": ["2026-01-01T00:00:00Z", "", "yesterday", "9999-99-99", *DATA_CANARIES],
}
PII_COLUMNS = {
    "email": DATA_CANARIES[0],
    "ssn": DATA_CANARIES[1],
    "phone": DATA_CANARIES[2],
    "card": DATA_CANARIES[3],
}


@st.composite
def csv_bytes(draw: st.DrawFn) -> tuple[bytes, str]:
    """A hostile decision CSV: PII in header names and cells, BOMs, NULs, encodings, blanks."""
    flags = draw(
        st.sets(
            st.sampled_from(
                [
                    "headerless",
                    "pii-header",
                    "bom",
                    "crlf",
                    "blank",
                    "nul",
                    "latin1",
                    "utf16",
                    "huge-field",
                    "ragged",
                    "wide",
                    "quote",
                    "truncated",
                ]
            ),
            max_size=4,
        )
    )
    n = draw(st.integers(0, 80))
    header = list(CELLS) + [c if "pii-header" not in flags else v for c, v in PII_COLUMNS.items()]
    rows = []
    for i in range(n):
        row = [
            draw(st.sampled_from(v[:4] if j < 2 and i % 3 else v))
            for j, v in enumerate(CELLS.values())
        ]
        rows.append(row + list(PII_COLUMNS.values()))
    if "headerless" in flags:
        header = ["Female", "1", "1", "700", "2026-01-01T00:00:00Z", *PII_COLUMNS.values()]
    if "wide" in flags:
        header += [f"c{i}" for i in range(draw(st.sampled_from([100, 5000])))]
    if "huge-field" in flags and rows:
        rows[0][-1] = DATA_CANARIES[0] * 50_000
    if "ragged" in flags and rows:
        rows[-1] += [DATA_CANARIES[1]] * 3
    lines = [",".join(f'"{c}"' if "," in c else c for c in header)]
    lines += [",".join(f'"{c}"' if "," in c else c for c in row) for row in rows]
    if "blank" in flags:
        lines.insert(min(2, len(lines)), "")
    if "quote" in flags:
        lines.append('Male,"1,' + DATA_CANARIES[0])
    text = ("\r\n" if "crlf" in flags else "\n").join(lines) + "\n"
    data = text.encode(
        "utf-16" if "utf16" in flags else "latin-1" if "latin1" in flags else "utf-8", "replace"
    )
    if "bom" in flags:
        data = b"\xef\xbb\xbf" + data
    if "nul" in flags:
        data = data.replace(b",", b",\0", 3)
    if "truncated" in flags:
        data = data[: max(1, len(data) * 2 // 3)]
    return data, "csv:" + ",".join(sorted(flags))
