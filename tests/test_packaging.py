"""Packaging: a wheel and a plain ``pip install .`` work, not only the editable checkout.

The quick tests compare the declarations with the code: every third-party module the package
(or a migration) imports is a declared dependency in pyproject.toml and pinned in
requirements.txt, and every subpackage is in pyproject's explicit package list. The long ones
(``make test-long``) build the wheel from a copy of the checkout, install it with ``--no-deps``
into a fresh venv (no ``--system-site-packages``; the pinned dependencies are reached through a
``.pth`` file naming this venv's site-packages, so nothing of the checkout is importable), and
run ``db upgrade``, ``once`` and ``verify`` from a folder outside the repository.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import fairlens_monitor
from fairlens_monitor.store.schema import head_revision

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# A build (an isolated one fetches setuptools from the package index) and a venv on a loaded
# machine: generous, the test waits on the processes, not on a clock.
STEP_TIMEOUT_S = 300


def normalise(name: str) -> str:
    """A distribution name in PEP 503 form (``PyYAML`` → ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, Requirement]:
    """pyproject.toml's ``dependencies``, by normalised name."""
    reqs = (Requirement(line) for line in PYPROJECT["project"]["dependencies"])
    return {normalise(r.name): r for r in reqs}


def pinned() -> dict[str, Requirement]:
    """requirements.txt's pins, by normalised name."""
    lines = (REPO / "requirements.txt").read_text().splitlines()
    reqs = (Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip())
    return {normalise(r.name): r for r in reqs}


def imported_modules() -> dict[str, Path]:
    """Top-level third-party modules imported anywhere in the package or the migrations."""
    found: dict[str, Path] = {}
    for path in [*(REPO / "fairlens_monitor").rglob("*.py"), *(REPO / "migrations").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "fairlens_monitor":
                    found.setdefault(top, path)
    return found


def test_every_imported_distribution_is_declared_and_pinned() -> None:
    distributions = importlib.metadata.packages_distributions()
    deps, pins = declared(), pinned()
    problems = []
    for module, where in sorted(imported_modules().items()):
        names = distributions.get(module)
        if not names:
            problems.append(f"{module} (imported by {where.relative_to(REPO)}) is not installed")
            continue
        name = normalise(names[0])
        if name not in deps:
            problems.append(
                f"{names[0]} (imported by {where.relative_to(REPO)}) is not in "
                "pyproject.toml's dependencies"
            )
        if name not in pins:
            problems.append(
                f"{names[0]} (imported by {where.relative_to(REPO)}) is not pinned "
                "in requirements.txt"
            )
    assert not problems, "\n".join(problems)


def test_requirements_pin_every_declared_dependency_within_its_range() -> None:
    pins = pinned()
    for name, dep in declared().items():
        assert name in pins, (
            f"{dep} is declared in pyproject.toml but not pinned in requirements.txt"
        )
        (spec,) = pins[name].specifier
        assert spec.operator == "==", f"requirements.txt must pin {name} exactly, not {spec}"
        assert dep.specifier.contains(spec.version), f"the pin {pins[name]} is outside {dep}"
        assert dep.extras <= pins[name].extras, f"the pin {pins[name]} lacks the extras of {dep}"


def subpackages() -> set[str]:
    """Every package folder under fairlens_monitor/, as a dotted name."""
    root = REPO / "fairlens_monitor"
    return {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_pyprojects_package_list_has_every_subpackage() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    missing = subpackages() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_package_root_exports_resolve_and_import_nothing_heavy() -> None:
    for name in fairlens_monitor.__all__:
        assert getattr(fairlens_monitor, name) is not None
    probe = (
        "import sys, fairlens_monitor\n"
        "heavy = {'pandas', 'numpy', 'sqlalchemy', 'alembic', 'streamlit'} & set(sys.modules)\n"
        "sys.exit(sorted(heavy) or 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- the real thing: build, install into a fresh venv, run ------------------------------------


def source_copy(dest: Path) -> Path:
    """Copy what ``pip install .`` reads (the top-level files, the package, the migrations).

    A copy, so the build's ``build/`` and ``*.egg-info`` never land in (nor come stale from)
    the working tree, and tests running beside this one see no half-built files.
    """
    dest.mkdir()
    for item in REPO.iterdir():
        if item.is_file():
            shutil.copy2(item, dest / item.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("fairlens_monitor", "migrations"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    return dest


def run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command, fail the test with its output unless it exits 0; return stdout."""
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
        f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
    )
    return result.stdout


def fresh_venv(where: Path) -> tuple[Path, Path]:
    """A venv without pip or system site-packages whose only extra path is our deps' folder.

    Returns:
        (its python, its site-packages).
    """
    run([sys.executable, "-m", "venv", "--without-pip", where], cwd=where.parent)
    python = where / "bin" / "python"
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=where
        ).strip()
    )
    paths = sysconfig.get_paths()
    # The pinned dependencies, already installed here. A path from a .pth file is appended
    # after the venv's own site-packages, and its own .pth files (this checkout's editable
    # install) are not processed, so fairlens_monitor can only come from the venv.
    deps = dict.fromkeys([paths["purelib"], paths["platlib"]])
    (site / "_fairlens_test_deps.pth").write_text("\n".join(deps) + "\n")
    return python, site


def pip_into(python: Path, *args: str | Path, cwd: Path) -> None:
    """``pip install --no-deps`` into another venv (pip's ``--python``: that venv has no pip)."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-input",
            *args,
        ],
        cwd=cwd,
    )


def clean_env(venv: Path) -> dict[str, str]:
    """This environment without anything that could point the CLI back at the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FAIRLENS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


WHERE = (
    "import fairlens_monitor; from fairlens_monitor.store.schema import migrations_folder; "
    "print(fairlens_monitor.__file__); print(migrations_folder(''))"
)


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_wheel_in_a_fresh_venv_migrates_runs_and_verifies(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    src = source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "wheel",
            "--no-deps",
            "-w",
            dist,
            src,
        ],
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("fairlens_monitor-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(p.name for p in (REPO / "migrations" / "versions").glob("*.py"))
    assert versions, "no migration in the checkout"
    wanted = {"fairlens_monitor/_migrations/env.py", "fairlens_monitor/_migrations/script.py.mako"}
    wanted.add("fairlens_monitor/ops/report.html.j2")  # the report's template (package data)
    wanted |= {f"fairlens_monitor/_migrations/versions/{name}" for name in versions}
    wanted |= {f"{pkg.replace('.', '/')}/__init__.py" for pkg in subpackages()}
    assert wanted - names == set(), f"missing from the wheel: {sorted(wanted - names)}"
    assert not any(n.startswith("migrations/") for n in names), "a top-level migrations package"

    python, site = fresh_venv(tmp_path / "venv")
    pip_into(python, wheel, cwd=tmp_path)
    config = write_config()  # tmp_path/config.yaml: SQLite and keys under tmp_path/var
    env = clean_env(tmp_path / "venv")
    package, migrations = run([python, "-c", WHERE], cwd=tmp_path, env=env).split()
    assert Path(package).resolve().is_relative_to(site.resolve()), package
    assert Path(migrations).resolve() == (site / "fairlens_monitor" / "_migrations").resolve()

    cli = tmp_path / "venv" / "bin" / "fairlens-monitor"
    upgraded = run([cli, "--config", config, "db", "upgrade"], cwd=tmp_path, env=env)
    assert f"at revision {head_revision('')}" in upgraded, upgraded
    run([cli, "--config", config, "once"], cwd=tmp_path, env=env)
    verified = run([cli, "--config", config, "verify"], cwd=tmp_path, env=env)
    assert "audit chain intact" in verified, verified
    # the report's template, fonts and libraries load from the installed wheel
    pack = tmp_path / "pack"
    period = ["--from", "2000-01-01", "--to", "2100-01-01", "--out", str(pack)]
    packed = run([cli, "--config", config, "report", *period], cwd=tmp_path, env=env)
    assert "MANIFEST.json signed" in packed, packed
    assert (pack / "report.html").stat().st_size > 0


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_plain_pip_install_dot_upgrades_without_a_checkout(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    src = source_copy(tmp_path / "src")
    python, _site = fresh_venv(tmp_path / "venv")
    pip_into(python, ".", cwd=src)  # literally `pip install .`, not editable
    shutil.rmtree(src)  # nothing of the source tree may be needed afterwards
    config = write_config()
    cli = tmp_path / "venv" / "bin" / "fairlens-monitor"
    result = subprocess.run(
        [str(cli), "--config", str(config), "db", "upgrade"],
        cwd=tmp_path,
        env=clean_env(tmp_path / "venv"),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pip install -e" not in result.stdout + result.stderr
    assert f"at revision {head_revision('')}" in result.stdout
