"""Every check the project runs: `python3 -m nox` runs all but the benchmark.

Sessions install the package (not editable, so packaging mistakes show) plus
the dependency groups from pyproject.toml, with pip, from PyPI.
"""

from __future__ import annotations

import re
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_minimal", "readme", "lint", "typecheck", "docs"]
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True
# `tests` runs on every Python version pyproject claims. A version this machine lacks is
# skipped with nox's "Python interpreter 3.X not found" message, in CI too (nox would
# otherwise fail there when CI is set): a runner with one Python still checks that one.
nox.options.error_on_missing_interpreters = False

PYPROJECT = nox.project.load_toml("pyproject.toml")

#: The Python versions the package claims, read from its trove classifiers.
PYTHONS = [
    classifier.rpartition(" :: ")[2]
    for classifier in PYPROJECT["project"]["classifiers"]
    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
]

# The full test, type-check and benchmark environments install every extra.
PACKAGE_WITH_EXTRAS = ".[all]"


def _groups(*names: str) -> tuple[str, ...]:
    return nox.project.dependency_groups(PYPROJECT, *names)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every backend, with branch coverage, and the docs' snippets.

    Backends: asyncio (debug mode), asyncio+uvloop, trio, and on Python 3.12+ asyncio with
    eager tasks (tests/conftest.py). tests/test_docs_snippets.py runs every Python block of
    README.md and docs/ against the embedded simulator.
    """
    session.install(PACKAGE_WITH_EXTRAS, *_groups("test", "test-backends"))
    # coverage starts before pytest so that modules imported by plugins (the
    # `anyfan_sim` fixture's entry point imports anyfan) are measured from the start.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


@nox.session
@nox.parametrize(
    "sdk",
    [
        nox.param("openai[aiohttp]>=3,<4", id="openai3"),  # on httpx2
        nox.param("openai[aiohttp]>=2,<3", id="openai2"),  # on httpx
    ],
)
def tests_openai(session: nox.Session, sdk: str) -> None:
    """Run the OpenAI adapter's tests against each major version of the openai SDK."""
    session.install(".[trio,sim]", sdk, *_groups("test", "test-backends"))
    session.run("pytest", "tests/adapter_openai", *session.posargs)


@nox.session
def tests_minimal(session: nox.Session) -> None:
    """Run the test suite with nothing optional installed: asyncio only, no trio, no uvloop."""
    session.install(".", *_groups("test"))
    # Guard against a test dependency pulling an optional backend in after all.
    session.run(
        "python",
        "-c",
        "import importlib.util as u, sys; "
        "found = [m for m in ('trio', 'uvloop') if u.find_spec(m)]; "
        "sys.exit(f'tests_minimal must run without {found}' if found else 0)",
        silent=True,
    )
    session.run("pytest", *session.posargs)


@nox.session(reuse_venv=False)
def readme(session: nox.Session) -> None:
    """Run the README's main-job command, verbatim, in a brand-new virtualenv."""
    command = _readme_commands()[0]
    session.log(command)
    # nox puts the fresh virtualenv first on PATH, so `python3` is its interpreter.
    session.run("bash", "-c", command, external=True)


def _readme_commands() -> list[str]:
    """The README's set-up commands: the shell lines of its "Set up" code blocks."""
    lines = Path("README.md").read_text(encoding="utf-8").splitlines()
    commands, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = not inside and line.strip() in ("```bash", "```sh", "```console")
            continue
        if inside and line.startswith("python3 -m pip install"):
            commands.append(line.strip())
    if len(commands) != 2:
        raise RuntimeError(f"README must give exactly two set-up commands, found {commands}")
    return commands


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (run `ruff format` to fix the latter)."""
    session.install(*_groups("lint"))
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package and pin the public API's inferred types with mypy --strict."""
    session.install(PACKAGE_WITH_EXTRAS, *_groups("typecheck"))
    session.run("mypy", "--strict", "src", "tests/typing/test_api_types.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; any warning is an error."""
    session.install(*_groups("docs"))
    # The banner about Material for MkDocs' end of life is noise in every build log.
    env = {"NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and regenerate docs/benchmarks.md (not part of plain `nox`)."""
    session.install(PACKAGE_WITH_EXTRAS, *_groups("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)
