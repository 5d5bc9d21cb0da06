"""Every Python snippet in README.md and docs/ runs as printed, against the embedded simulator.

Each page's ```` ```python ```` blocks run in order, in one namespace, in a fresh
subprocess, as a reader pasting them into one notebook would: top-level ``await`` is
allowed and runs on one event loop kept for the whole page. ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY`` point at an `anyfan.sim.Simulator` started for the test, so code that
builds a bare ``OpenAI()`` or ``AsyncOpenAI()`` talks to it, with no network and no key.

A block that cannot run as it stands is marked in the Markdown by an HTML comment on the
line just before its fence, which says why; the comment is invisible on the site::

    <!-- snippet: skip (needs a Redis server) -->

Skipped blocks are reported in the test's output (``-rs`` shows them; pytest's ``-ra``
is on by default). Nothing else is ever left out, and no snippet is edited before it
runs. Pages run in parallel subprocesses, since they mostly wait on sleeps and sockets.

Run one page by hand, with its output shown::

    PYTHONPATH=src python tests/test_docs_snippets.py docs/tutorial/simulator.md
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
#: The pages whose snippets must run.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: The one annotation a block may carry: ``<!-- snippet: skip (why) -->``.
SKIP = re.compile(r"^\s*<!--\s*snippet:\s*skip\s*\((?P<why>.+)\)\s*-->\s*$")
MARKER = re.compile(r"^\s*<!--\s*snippet:")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+)\s*(?P<lang>[\w+-]*)")
#: A pymdownx.snippets include (``--8<-- "path"``, from the repository root as mkdocs.yml
#: sets it): the site shows the file's text there, so the test runs that text.
INCLUDE = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
#: A page that runs longer than this has hung (the slowest page takes a few seconds).
PAGE_TIMEOUT = 120.0
#: Pages run at once: they mostly sleep, so more than the cores is fine.
PARALLEL_PAGES = 6


@dataclasses.dataclass(frozen=True)
class Snippet:
    """One ```` ```python ```` block: where it starts, its code, and why it is skipped."""

    line: int  # 1-based line of the first line of code
    code: str
    skip: str | None


def snippets(page: Path) -> list[Snippet]:
    """The page's Python blocks, in order, dedented, with their skip reasons."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            if MARKER.match(lines[index]) and not SKIP.match(lines[index]):
                raise ValueError(f"{page}:{index + 1}: malformed snippet marker {lines[index]!r}")
            index += 1
            continue
        indent, ticks = fence["indent"], fence["ticks"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        if fence["lang"] == "python":
            before = lines[index - 1] if index else ""
            skip = SKIP.match(before)
            body = [
                text
                for line in lines[index + 1 : end]
                for text in _included(line.removeprefix(indent))
            ]
            code = "\n".join(body) + "\n"
            found.append(Snippet(index + 2, code, skip["why"].strip() if skip else None))
        index = end + 1
    return found


def _included(line: str) -> list[str]:
    """The line itself, or the lines of the file it includes."""
    include = INCLUDE.match(line)
    if include is None:
        return [line]
    return (ROOT / include["path"]).read_text(encoding="utf-8").splitlines()


def _pages_with_snippets() -> list[Path]:
    return [page for page in PAGES if snippets(page)]


def _run_page(page: Path, base_url: str, redis_url: str | None) -> subprocess.CompletedProcess[str]:
    runnable = [dataclasses.asdict(s) for s in snippets(page) if s.skip is None]
    env = {
        **os.environ,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-docs-snippets",
    }
    if redis_url is not None:  # pages that share a quota read REDIS_URL, as deployments do
        env["REDIS_URL"] = redis_url
    if "PYTHONPATH" in env:  # the pages run in a scratch directory: keep relative entries valid
        env["PYTHONPATH"] = os.pathsep.join(
            map(os.path.abspath, env["PYTHONPATH"].split(os.pathsep))
        )
    env.pop("PYTHONASYNCIODEBUG", None)
    with tempfile.TemporaryDirectory(prefix="anyfan-snippets-") as cwd:
        return subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(page)],
            input=json.dumps(runnable),
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=PAGE_TIMEOUT,
            check=False,
        )


def _child(page: str) -> int:
    """Run the snippets given on stdin in one namespace, as one notebook would."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module  # pickling and dataclasses look their module up
    loop: asyncio.AbstractEventLoop | None = None
    for snippet in json.loads(sys.stdin.read()):
        # Padding keeps tracebacks' line numbers those of the Markdown page.
        source = "\n" * (snippet["line"] - 1) + snippet["code"]
        try:
            code = compile(
                source, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
            )
            result = eval(code, module.__dict__)
            if inspect.iscoroutine(result):
                if loop is None:
                    loop = asyncio.new_event_loop()
                loop.run_until_complete(result)
        except BaseException:
            print(f"\nsnippet at {page}:{snippet['line']} failed:", file=sys.stderr)
            traceback.print_exc()
            return 1
        sys.stdout.flush()
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    sys.exit(_child(sys.argv[2]))


# The test proper: nothing above this line needs pytest.
import pytest  # noqa: E402

_PAGES = _pages_with_snippets()
#: Pages whose snippets do not run as printed yet (issue 10): each fails strictly as
#: expected, so fixing a page means deleting its line here.
KNOWN_FAILING: dict[str, str] = {}


def _param(page: Path) -> Any:
    name = str(page.relative_to(ROOT))
    if name in KNOWN_FAILING:
        mark = pytest.mark.xfail(reason=f"issue 10: {KNOWN_FAILING[name]}", strict=True)
        return pytest.param(page, id=name, marks=mark)
    return pytest.param(page, id=name)


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest) -> dict[Path, Any]:
    """Run every selected page at once, in parallel subprocesses, on one simulator."""
    pytest.importorskip("openai")
    pytest.importorskip("trio")
    pytest.importorskip("uvicorn")
    from anyfan.sim import Simulator

    selected = {
        cast("Path", item.callspec.params["page"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_page_runs_as_printed"
    }
    with (
        Simulator() as sim,
        _redis_server() as redis_url,
        concurrent.futures.ThreadPoolExecutor(PARALLEL_PAGES) as pool,
    ):
        futures = {page: pool.submit(_run_page, page, sim.base_url, redis_url) for page in selected}
        return {page: future.result() for page, future in futures.items()}


@contextlib.contextmanager
def _redis_server() -> Iterator[str | None]:
    """A redis-server for the pages that share a quota, where one can be had."""
    import importlib.util

    from redis_server import RedisServer, external_url, redis_server_binary

    url, binary = external_url(), redis_server_binary()
    if url is not None or binary is None or importlib.util.find_spec("hiredis") is None:
        yield url
        return
    with RedisServer(binary) as server:
        yield server.url


@pytest.mark.parametrize("page", [_param(page) for page in _PAGES])
def test_page_runs_as_printed(page: Path, page_runs: dict[Path, Any]) -> None:
    run = page_runs[page]
    assert run.returncode == 0, f"{page.relative_to(ROOT)}:\n{run.stdout}\n{run.stderr}"
    skipped = [s for s in snippets(page) if s.skip]
    if skipped:
        where = "; ".join(f"line {s.line}: {s.skip}" for s in skipped)
        pytest.skip(f"ran the rest; skipped {len(skipped)} block(s): {where}")


def test_markers_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```python\nx = 1\n```\n\n<!-- snippet: skip (a fragment) -->\n"
        "```python\ny = x +\n```\n\n```sh\nls\n```\n\n- item\n\n  ```python\n  z = 2\n  ```\n",
        encoding="utf-8",
    )
    assert snippets(page) == [
        Snippet(4, "x = 1\n", None),
        Snippet(9, "y = x +\n", "a fragment"),
        Snippet(19, "z = 2\n", None),
    ]


def test_a_malformed_marker_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- snippet: skipp -->\n```python\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="malformed snippet marker"):
        snippets(page)


def test_the_runner_fails_on_a_failing_snippet_and_allows_top_level_await(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport asyncio\nawait asyncio.sleep(0)\nx = 1\n```\n\n"
        "```python\nassert x == 2, 'the namespace is shared'\n```\n",
        encoding="utf-8",
    )
    run = _run_page(page, "http://127.0.0.1:9/v1")
    assert run.returncode == 1
    assert f"snippet at {page}:8 failed" in run.stderr
    assert "the namespace is shared" in run.stderr


if __name__ == "__main__":  # by hand: run the pages named on the command line, output shown
    from anyfan.sim import Simulator

    with Simulator() as _sim:
        for _name in sys.argv[1:]:
            _run = _run_page(Path(_name).resolve(), _sim.base_url)
            print(_run.stdout, _run.stderr, sep="", end="")
            print(f"{_name}: {'ok' if _run.returncode == 0 else 'FAILED'}")
