"""The ``anyfan`` command: a table of subcommands, each in its own module.

A subcommand module provides ``add_arguments(parser)`` and ``main(args) -> int``.
Modules are imported only when their subcommand runs, so ``anyfan --help``
stays fast, and a subcommand whose module is not there is simply not offered.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Final, Protocol, cast

from .. import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Subcommand name -> module implementing it.
COMMANDS: Final = {
    "demo": "anyfan.cli._demo",
    "sim": "anyfan.cli._sim",
    "run": "anyfan.cli._run",
}

#: One-line help per subcommand, known without importing its module.
SUMMARIES: Final = {
    "demo": "time sequential calls against fanned-out ones on a stand-in for a slow API",
    "sim": "serve the OpenAI-compatible simulator on 127.0.0.1",
    "run": "answer a JSONL file of requests, exactly once, within rate limits",
}


class Command(Protocol):
    """What a subcommand module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the subcommand's options on ``parser``."""

    def main(self, args: argparse.Namespace) -> int:
        """Run the subcommand; return the process exit code."""


def available_commands() -> dict[str, str]:
    """Return the subcommands whose modules exist, without importing them."""
    return {name: mod for name, mod in COMMANDS.items() if importlib.util.find_spec(mod)}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser, with full options only for the subcommand named in ``argv``."""
    parser = argparse.ArgumentParser(
        prog="anyfan",
        description="Fan out many slow calls at once, on asyncio, trio or from sync code.",
    )
    parser.add_argument("--version", action="version", version=f"anyfan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Top-level options take no values, so the first bare word names the subcommand.
    wanted = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, module_name in available_commands().items():
        summary = SUMMARIES.get(name, "")
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if name == wanted:
            command = cast("Command", importlib.import_module(module_name))
            command.add_arguments(sub)
            sub.set_defaults(run=command.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run the subcommand."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    return int(args.run(args))
