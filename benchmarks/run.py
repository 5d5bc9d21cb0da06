"""Run anyfan's benchmarks and write docs/benchmarks.md.

Each ``benchmarks/bench_<key>.py`` is one section. It defines ``TITLE``, a
``run(opts) -> str`` that measures and returns the section's markdown, and
optionally ``add_arguments(parser)`` for its own options (prefixed with its key)
and ``ORDER`` (lower comes first in the document, default 100).

    python benchmarks/run.py                  # every section, rewrites docs/benchmarks.md
    python benchmarks/run.py --only core      # refresh one section, keep the others
    python benchmarks/run.py --quick          # smoke run in seconds; writes to a temp file
    python benchmarks/run.py --list           # the sections there are

Sections sit between ``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->`` markers
in the output, so a partial run replaces only the sections it ran.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import re
import sys
import tempfile
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness

if TYPE_CHECKING:
    from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
QUICK_OUTPUT = Path(tempfile.gettempdir()) / "anyfan-benchmarks-quick.md"

#: Packages whose versions the header reports, when installed.
PACKAGES = (
    "anyfan",
    "anyio",
    "trio",
    "uvloop",
    "aiometer",
    "aiolimiter",
    "asgiref",
    "openai",
    "httpx",
    "aiohttp",
    "psutil",
)

_SECTION = re.compile(r"<!-- bench:(?P<key>[\w-]+) -->\n.*?<!-- /bench:(?P=key) -->", re.DOTALL)


@dataclass(frozen=True)
class Section:
    """A discovered benchmark module."""

    key: str
    module: ModuleType

    @property
    def order(self) -> tuple[int, str]:
        return getattr(self.module, "ORDER", 100), self.key


def discover() -> list[Section]:
    """Import every ``bench_*.py`` next to this file, in document order.

    A module that fails to import is reported and left out; its section in the
    existing output is kept as it was.
    """
    sections = []
    for path in sorted(HERE.glob("bench_*.py")):
        try:
            module = importlib.import_module(path.stem)
        except ImportError as exc:
            _harness.progress(f"!! {path.name} cannot be imported ({exc}); section skipped")
            continue
        sections.append(Section(path.stem.removeprefix("bench_"), module))
    return sorted(sections, key=lambda s: s.order)


def build_parser(sections: list[Section]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="comma-separated sections to run; the others are kept from the existing output",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run with small N that finishes in seconds; numbers are not meaningful",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help=f"markdown file to update, '-' for stdout "
        f"(default: {DEFAULT_OUTPUT.relative_to(ROOT)}, or {QUICK_OUTPUT} with --quick)",
    )
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    for section in sections:
        add_arguments = getattr(section.module, "add_arguments", None)
        if add_arguments is not None:
            add_arguments(parser.add_argument_group(f"{section.key} ({section.module.TITLE})"))
    return parser


def select(sections: list[Section], only: str | None) -> list[Section]:
    if not only:
        return sections
    wanted = [key.strip() for key in only.split(",") if key.strip()]
    known = {s.key for s in sections}
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {sorted(known)}")
    return [s for s in sections if s.key in wanted]


# -- the document ------------------------------------------------------------


def existing_sections(text: str) -> dict[str, str]:
    """The marked sections already in ``text``, markers included, by key."""
    return {m["key"]: m[0] for m in _SECTION.finditer(text)}


def wrap(key: str, body: str, *, seconds: float, quick: bool, load: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kind = "quick smoke run" if quick else "full run"
    footer = (
        f"_Section measured {when} ({kind}, {seconds:.0f} s, load average {load} "
        f"before it started); refresh it alone with `python benchmarks/run.py --only {key}`._"
    )
    return f"<!-- bench:{key} -->\n{body.strip()}\n\n{footer}\n<!-- /bench:{key} -->"


def load_average() -> str:
    """The 1-minute load average: other work on the machine makes the numbers noisy."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "unknown"


def machine_info() -> list[tuple[str, str]]:
    rows = [
        ("CPU", cpu_model()),
        ("cores", cores()),
        ("RAM", ram()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("OS", platform.platform()),
    ]
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    rows.append(("packages", ", ".join(versions)))
    return rows


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cores() -> str:
    logical = os.cpu_count() or 0
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    text = f"{logical} logical"
    if physical:
        text += f", {physical} physical"
    if usable != logical:
        text += f", {usable} usable by this process"
    return text


def ram() -> str:
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        total = int(psutil.virtual_memory().total)
    except ImportError:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return "unknown"
    return f"{total / 2**30:.1f} GiB"


def render(sections: list[Section], bodies: dict[str, str], *, partial: bool) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run.py; edits here are overwritten. -->",
        "",
        "Measured on the machine below. Numbers from a shared or virtual machine are noisy: "
        "read them as ratios between rows of one table, which were measured in one run.",
        "",
        _harness.table(("", ""), machine_info(), "ll"),
        "",
        f"Generated {now}"
        + (
            " (some sections kept from an earlier run; each section gives its own date)."
            if partial
            else "."
        ),
        "",
        "Regenerate everything with `nox -s bench` (or `python benchmarks/run.py` in an "
        "environment with the benchmark dependencies), one section with "
        "`nox -s bench -- --only KEY`, and a smoke run in seconds with `nox -s bench -- --quick`.",
        "",
    ]
    order = [s.key for s in sections] + sorted(set(bodies) - {s.key for s in sections})
    return "\n".join(head) + "\n" + "\n\n".join(bodies[k] for k in order if k in bodies) + "\n"


# -- main --------------------------------------------------------------------


def write(output: str, sections: list[Section], fresh: dict[str, str]) -> None:
    """Merge ``fresh`` sections into ``output`` as it is now, and write it atomically.

    The file is re-read here, not at start, so sections that others wrote
    while this run was measuring are kept.
    """
    path = Path(output)
    bodies = existing_sections(path.read_text(encoding="utf-8")) if path.exists() else {}
    bodies.update(fresh)
    text = render(sections, bodies, partial=bool(set(bodies) - set(fresh)))
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)


def main(argv: list[str] | None = None) -> int:
    sections = discover()
    parser = build_parser(sections)
    opts = parser.parse_args(argv)
    if opts.list:
        for section in sections:
            print(f"{section.key:12} {section.module.TITLE}")
        return 0
    chosen = select(sections, opts.only)
    output = opts.output or str(QUICK_OUTPUT if opts.quick else DEFAULT_OUTPUT)

    fresh: dict[str, str] = {}
    failed = []
    for section in chosen:
        _harness.progress(f"== {section.key}: {section.module.TITLE}")
        load = load_average()
        watch = _harness.Stopwatch()
        try:
            body = section.module.run(opts)
        except Exception:
            traceback.print_exc()
            failed.append(section.key)
            _harness.progress(f"!! section {section.key} failed; its old text (if any) is kept")
            continue
        fresh[section.key] = wrap(
            section.key, body, seconds=watch.seconds, quick=opts.quick, load=load
        )
        _harness.progress(f"== {section.key} done in {watch.seconds:.0f} s")
        if output != "-":
            # After every section, so an interrupted run keeps what it finished.
            write(output, sections, fresh)
            _harness.progress(f"wrote {output}")

    if output == "-":
        sys.stdout.write(render(sections, fresh, partial=False))

    text = "\n".join(fresh.values())
    passes, fails = text.count(_harness.PASS), text.count(_harness.FAIL)
    _harness.progress(f"targets in the sections just run: {passes} PASS, {fails} FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
