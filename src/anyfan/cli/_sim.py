"""``anyfan sim``: serve the OpenAI-compatible simulator in the foreground until interrupted.

The first line printed is ``anyfan sim: serving URL`` (URL being the
``base_url`` for an OpenAI client), so a script can start the process and read
where it listens; on SIGINT or SIGTERM it stops and prints its counters as one
JSON line.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from anyfan.sim import Faults, Latency, ServerLimits, Simulator

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from types import FrameType

_FAULT_OPTIONS = {
    "fault_500": "server_error",
    "fault_503": "unavailable",
    "fault_reset": "reset",
    "fault_hang": "hang",
    "fault_slow": "slow_first_byte",
    "fault_cut": "stream_cut",
    "fault_quota": "insufficient_quota",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``anyfan sim``'s options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    limits = parser.add_argument_group("rate limits per API key")
    limits.add_argument("--rpm", type=int, help="requests per minute")
    limits.add_argument("--tpm", type=int, help="tokens per minute (prompt + max_tokens)")
    latency = parser.add_argument_group("latency")
    latency.add_argument("--ttft-ms", type=float, default=0.0, help="base time to first token")
    latency.add_argument(
        "--per-prompt-token-ms", type=float, default=0.0, help="extra time to first token"
    )
    latency.add_argument("--itl-ms", type=float, default=0.0, help="inter-token latency")
    latency.add_argument("--jitter", type=float, default=0.0, help="random spread, 0 to 1")
    faults = parser.add_argument_group("fault probabilities, each from 0 to 1")
    faults.add_argument("--fault-500", type=float, default=0.0, metavar="P", help="HTTP 500")
    faults.add_argument("--fault-503", type=float, default=0.0, metavar="P", help="HTTP 503")
    faults.add_argument("--fault-reset", type=float, default=0.0, metavar="P", help="reset")
    faults.add_argument("--fault-hang", type=float, default=0.0, metavar="P", help="no answer")
    faults.add_argument(
        "--fault-slow", type=float, default=0.0, metavar="P", help="slow first byte"
    )
    faults.add_argument(
        "--fault-cut", type=float, default=0.0, metavar="P", help="body cut half-way"
    )
    faults.add_argument(
        "--fault-quota", type=float, default=0.0, metavar="P", help="insufficient_quota 429"
    )
    faults.add_argument(
        "--slow-first-byte-ms", type=float, default=2000.0, help="delay of a slow first byte"
    )
    content = parser.add_argument_group("content")
    content.add_argument("--seed", type=int, default=0, help="seed of content, dice and jitter")
    content.add_argument(
        "--reply-tokens",
        type=int,
        nargs=2,
        default=(10, 40),
        metavar=("SHORTEST", "LONGEST"),
        help="natural reply lengths, in tokens",
    )
    parser.add_argument(
        "--loop", choices=("auto", "uvloop", "asyncio"), default="auto", help="event loop"
    )


def build_simulator(args: argparse.Namespace) -> Simulator:
    """Build the (unstarted) simulator the options describe; raise on a bad option."""
    probabilities: dict[str, Any] = {
        field: getattr(args, option) for option, field in _FAULT_OPTIONS.items()
    }
    return Simulator(
        host=args.host,
        port=args.port,
        limits=ServerLimits(rpm=args.rpm, tpm=args.tpm),
        faults=Faults(**probabilities, slow_first_byte_ms=args.slow_first_byte_ms),
        latency=Latency(
            ttft_ms=args.ttft_ms,
            per_prompt_token_ms=args.per_prompt_token_ms,
            itl_ms=args.itl_ms,
            jitter=args.jitter,
        ),
        seed=args.seed,
        reply_tokens=tuple(args.reply_tokens),
        loop=args.loop,
    )


def _nothing(simulator: Simulator) -> None:
    """Do nothing: the default ``on_ready``."""


def serve(args: argparse.Namespace, on_ready: Callable[[Simulator], None] = _nothing) -> int:
    """Serve until SIGINT or SIGTERM (call from the main thread); return the exit code.

    Args:
        args: Parsed options.
        on_ready: Called with the running simulator once it accepts requests.
    """
    try:
        simulator = build_simulator(args)
    except (TypeError, ValueError) as exc:
        print(f"anyfan sim: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulator.start()
        except (OSError, RuntimeError) as exc:
            print(
                f"anyfan sim: error: cannot serve on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
            )
            return 1
        try:
            print(f"anyfan sim: serving {simulator.base_url}", flush=True)
            on_ready(simulator)
            stop.wait()
        finally:
            simulator.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps(simulator.counters().to_dict()), flush=True)
    return 0


def main(args: argparse.Namespace) -> int:
    """Run ``anyfan sim``."""
    return serve(args)
