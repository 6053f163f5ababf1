"""The reference documents cannot drift from the code they describe.

- docs/CONFIGURATION.md documents exactly the keys the validator accepts (found by asking the
  validator itself, as the fuzz tests do), no more and no fewer.
- docs/CLI.md names every click command, and its option list is the one click's own metadata
  gives (regenerate it with ``.venv/bin/python -m tests.test_doc_references --write``).
- README.md and docs/*.md name only modules, files and functions that exist: a module moved
  into a folder, or a function renamed, fails here until the prose follows it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import click
import pytest

import fairlens_monitor
from fairlens_monitor.cli.main import cli
from fairlens_monitor.config.settings import SECTIONS
from tests.helpers.commands import subcommands

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
CLI_DOC = DOCS / "CLI.md"
CONFIG_DOC = DOCS / "CONFIGURATION.md"
OPTIONS_START, OPTIONS_END = "<!-- cli-options:start -->", "<!-- cli-options:end -->"


# --- the command line -------------------------------------------------------------------


def commands(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``group`` with its path of names, groups before their commands."""
    for name, command in subcommands(group).items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def render_options() -> str:
    """The option list of docs/CLI.md, from click's metadata (what ``--help`` prints)."""
    out: list[str] = []
    every = [((), cli), *commands()]
    for path, command in every:
        name = " ".join(("fairlens-monitor", *path))
        ctx = click.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(ctx))
        summary = (command.get_short_help_str(limit=200) or "").strip()
        out.append(f"#### `{name} {usage}`")
        out.append("")
        if summary:
            out.append(summary)
            out.append("")
        for param in command.params:
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue  # arguments are named in the usage line above
            flags, text = record
            out.append(f"- `{flags}`" + (f": {text}" if text else ""))
        if out[-1] != "":
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def documented_options() -> str:
    text = CLI_DOC.read_text()
    assert OPTIONS_START in text, "docs/CLI.md lost its option markers"
    assert OPTIONS_END in text, "docs/CLI.md lost its option markers"
    return text.split(OPTIONS_START)[1].split(OPTIONS_END)[0].strip("\n") + "\n"


def command_table() -> str:
    return CLI_DOC.read_text().split("## Commands")[1].split("\n## ")[0]


def test_every_command_is_in_the_command_table() -> None:
    table = command_table()
    missing = [" ".join(path) for path, _ in commands() if f"`{' '.join(path)}" not in table]
    assert not missing, f"docs/CLI.md's command table does not describe: {missing}"


def test_every_option_in_the_command_table_exists() -> None:
    """A row's synopsis names a real command, and only options that command takes."""
    known = {" ".join(path): command for path, command in commands()}
    checked = 0
    for row in re.findall(r"^\| (.*?) \| ", command_table(), flags=re.MULTILINE):
        for synopsis in re.findall(r"`([^`]+)`", row):
            words = synopsis.split()
            path: list[str] = []
            while words and " ".join((*path, words[0])) in known:
                path.append(words.pop(0))
            assert path, f"docs/CLI.md names no command in {synopsis!r}"
            command = known[" ".join(path)]
            accepted = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for option in re.findall(r"(?<![\w-])--[\w-]+", synopsis):
                assert option in accepted, f"'{' '.join(path)}' has no option {option}"
            checked += 1
    assert checked >= len(known) - 4  # groups such as `db` and `keys` have no row of their own


def test_option_list_is_the_one_click_gives() -> None:
    assert documented_options() == render_options(), (
        "docs/CLI.md's option list differs from the click commands; regenerate it with "
        "`.venv/bin/python -m tests.test_doc_references --write`"
    )


def test_every_option_appears_in_the_cli_doc() -> None:
    """Belt and braces for the generated list: each option string is in the document."""
    text = CLI_DOC.read_text()
    for path, command in [((), cli), *commands()]:
        for param in command.params:
            for option in (*param.opts, *param.secondary_opts):
                if option.startswith("-"):
                    assert option in text, f"{' '.join(path) or 'global'} {option}"


# --- the configuration --------------------------------------------------------------------


def documented_keys() -> set[str]:
    table = CONFIG_DOC.read_text().split("| key | type, range | default | meaning |")[1]
    keys: set[str] = set()
    for first_cell in re.findall(r"^\| (.*?) \|", table, flags=re.MULTILINE):
        keys |= set(re.findall(r"`([\w.]+)`", first_cell))
    return keys - {"---"}


def test_configuration_doc_lists_exactly_the_accepted_keys(tmp_path: Path) -> None:
    from tests.fuzz_strategies import schema_keys

    accepted = set(schema_keys(tmp_path))
    assert len(accepted) > 50  # the probe found the sections (a silent empty set would pass)
    documented = documented_keys()
    # `monitors` holds the other sections per monitor (config/monitors.py), documented in a
    # row of its own and in the "Monitors" section; the probe reads single-monitor documents.
    assert "monitors" in documented
    documented.discard("monitors")
    assert accepted - documented == set(), "accepted by the validator, not in CONFIGURATION.md"
    assert documented - accepted == set(), "in CONFIGURATION.md, refused by the validator"


def test_configuration_doc_lists_every_section_of_the_demo_config() -> None:
    import yaml

    from fairlens_monitor.config.monitors import PER_MONITOR

    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    monitors = shipped.pop("monitors")
    keys = {f"{section}.{key}" for section, values in shipped.items() for key in values}
    assert keys <= documented_keys()
    # every section the demo's monitors set for themselves is one a monitor may set
    assert {s for own in monitors.values() for s in own or {}} <= PER_MONITOR
    assert "monitors" in documented_keys()


# --- names of modules, files and functions ---------------------------------------------------


def prose_documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def package_modules() -> dict[str, list[ModuleType]]:
    """Every module of the package by its last name (``groups`` → fairness/groups.py)."""
    found: dict[str, list[ModuleType]] = {}
    for info in pkgutil.walk_packages(fairlens_monitor.__path__, "fairlens_monitor."):
        if info.name.endswith(("viewer.page", "__main__")):
            continue  # the Streamlit page runs on import; __main__ runs the CLI
        module = importlib.import_module(info.name)
        found.setdefault(info.name.rsplit(".", 1)[1], []).append(module)
    return found


# Dotted names in backticks that are configuration keys or SQL, not module.attribute.
CONFIG_SECTIONS = SECTIONS | {"monitors"}  # monitors.NAME.section (config.monitors)


# File names in backticks that are not Python: runtime files (``fernet.key``), config examples.
OTHER_FILES = re.compile(
    r".*\.(yaml|yml|json|jsonl|md|csv|db|sql|txt|toml|key|pub|lock|gz|bin|"
    r"token|parquet|pq|png|sh|service|retired|staged|wal|shm|ini|cfg|old|html|pdf|sig|j2)"
)
# Scripts a document tells the reader to save under this name (AUDITORS.md).
READER_MADE = {"offline_rows.py"}


def references(text: str) -> Iterator[str]:
    """Names in ``inline code`` and the words of diagrams (code blocks without a language;
    sh/sql/python blocks are scripts with names of their own)."""
    for block in re.findall(r"```\n(.*?)```", text, flags=re.DOTALL):
        yield from re.findall(r"[\w/.]+", block)
    prose = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.DOTALL)
    yield from re.findall(r"`([^`\s]+)`", prose)


def defined_names(modules: dict[str, list[ModuleType]]) -> dict[str, object]:
    """Functions and classes the package defines (not imports), by name."""
    found: dict[str, object] = {}
    for group in modules.values():
        for module in group:
            for name, value in vars(module).items():
                if getattr(value, "__module__", None) == module.__name__:
                    found.setdefault(name, value)
    return found


def file_exists(name: str) -> bool:
    if (REPO / name).exists() or (REPO / "fairlens_monitor" / name).exists():
        return True
    if "/" not in name:  # a bare file name: anywhere in the project's own folders
        for folder in ("fairlens_monitor", "tests", "scripts", "benchmarks", "migrations"):
            if any((REPO / folder).rglob(name)):
                return True
    return False


def attribute_exists(modules: list[ModuleType], chain: list[str]) -> bool:
    for module in modules:
        target: object = module
        for part in chain:
            if not hasattr(target, part):
                break
            target = getattr(target, part)
        else:
            return True
    return False


@pytest.mark.parametrize("doc", prose_documents(), ids=lambda p: p.name)
def test_docs_name_only_modules_files_and_functions_that_exist(doc: Path) -> None:
    modules = package_modules()
    defined = defined_names(modules)
    stale: set[str] = set()
    for ref in references(doc.read_text()):
        ref = ref.rstrip(".,:;)")
        if OTHER_FILES.fullmatch(ref) or ref in READER_MADE:
            continue
        if re.fullmatch(r"[\w/.-]+\.py", ref):
            if not file_exists(ref.split("::")[0]):
                stale.add(ref)
            continue
        if ref.startswith("fairlens_monitor/"):
            if not (REPO / ref).exists():
                stale.add(ref)
            continue
        parts = ref.removesuffix("()").split(".")
        if len(parts) < 2 or not all(p.isidentifier() for p in parts):
            continue
        if parts[0] == "fairlens_monitor":
            head = ".".join(parts[:2])
            try:
                importlib.import_module(head)
            except ImportError:
                stale.add(ref)
            continue
        if parts[0] in CONFIG_SECTIONS:
            continue
        if parts[0] in modules:  # module.attribute: the attribute must be there
            if not attribute_exists(modules[parts[0]], parts[1:]):
                stale.add(ref)
        elif parts[0] in defined:  # Class.method
            if not attribute_exists([defined[parts[0]]], parts[1:]):  # type: ignore[list-item]
                stale.add(ref)
        elif parts[1] in defined:  # a function of ours under a module name that is gone
            stale.add(ref)
    assert not stale, f"{doc.name} names what does not exist (moved or renamed?): {sorted(stale)}"


def test_docs_do_not_name_a_future_version() -> None:
    """'since 0.3' in a 0.2 code base described something that is not released as such."""
    major, minor = (int(x) for x in fairlens_monitor.__version__.split(".")[:2])
    for doc in prose_documents():
        for found in re.finditer(
            r"\b(?:[Ss]ince|written before|[Vv]ersion) v?(\d+)\.(\d+)\b", doc.read_text()
        ):
            assert (int(found[1]), int(found[2])) <= (major, minor), (doc.name, found[0])


@pytest.mark.parametrize("doc", prose_documents(), ids=lambda p: p.name)
def test_relative_links_lead_to_files(doc: Path) -> None:
    """A link such as [OPERATIONS.md](OPERATIONS.md) still leads somewhere after a move."""
    broken = [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
        if not target.startswith(("http://", "https://", "#", "mailto:"))
        and not (doc.parent / target.split("#")[0]).exists()
    ]
    assert not broken, f"{doc.name} links to missing files: {broken}"


@pytest.mark.parametrize("doc", prose_documents(), ids=lambda p: p.name)
def test_named_sections_exist(doc: Path) -> None:
    """'docs/AUDITORS.md, "Verifying an export offline"' names a heading that is there."""
    text = re.sub(r"\s+", " ", doc.read_text())
    pattern = r"((?:docs/)?[A-Z]+\.md|README)\]?(?:\([^)]*\))?,? \"([^\"]+)\""
    missing = []
    for name, heading in re.findall(pattern, text):
        target = REPO / "README.md" if name == "README" else DOCS / Path(name).name
        headings = re.findall(r"^#+ (.*)$", target.read_text(), flags=re.MULTILINE)
        if heading not in headings:
            missing.append(f"{name}: {heading}")
    assert not missing, f"{doc.name} names sections that do not exist: {missing}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    text = CLI_DOC.read_text()
    head, rest = text.split(OPTIONS_START)
    tail = rest.split(OPTIONS_END)[1]
    CLI_DOC.write_text(f"{head}{OPTIONS_START}\n{render_options()}{OPTIONS_END}{tail}")
    print(f"wrote the option list of {CLI_DOC.relative_to(REPO)}")
