"""``anyfan run REQUESTS.jsonl -o RESULTS.jsonl``: answer a file of requests, exactly once.

A thin parser over `anyfan.batch`, which does the work (`anyfan.batch.run` is
the same job from Python). This module reads the options, checks them before
anything is sent, stops cleanly on SIGINT or SIGTERM, and reports.

Exit codes: 0 when every line was answered with a 2xx response, 1 when any
line ended as an error, 2 for a problem with the options or the files (nothing
is sent), 3 when the job was stopped by a failure of the whole job (a refused
key, 401 or 403, or no quota left: fix it and rerun), 130 when interrupted
(rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc

from .. import StoreUnavailable
from ..batch import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    DEFAULT_URLS,
    NOT_JSONL,
    BatchError,
    BatchJob,
    JobStopped,
    count_lines,
    input_shape,
    job_options,
    make_progress,
    redact_url,
    scrub,
    send,
    send_settings,
)
from ..openai import DEFAULT_ATTEMPTS
from ..transport import CLIENTS, DEFAULT_MAX_RESPONSE_BYTES, choose_client

if TYPE_CHECKING:
    from ..batch import LineProblem, ProgressMode, SendSettings

#: Problem lines printed before the rest are only counted.
SHOWN_PROBLEMS: Final = 20
EXIT_INTERRUPTED: Final = 130
_PROGRESS: Final[dict[str, ProgressMode]] = {
    "auto": "auto",
    "bar": "bar",
    "plain": "lines",
    "off": "off",
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``anyfan run``'s options."""
    parser.add_argument("requests", type=Path, metavar="REQUESTS.jsonl", help="the requests")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="RESULTS.jsonl",
        help="where the results go (resumed if it exists)",
    )
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help=f"the API to call (default: {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--endpoint",
        choices=sorted(DEFAULT_URLS),
        default=DEFAULT_URL,
        metavar="PATH",
        help=f"where bare request bodies are posted (default: {DEFAULT_URL}); "
        "Batch-shaped lines name their own",
    )
    limits = parser.add_argument_group("pace (may change between runs)")
    limits.add_argument("--rpm", type=_positive_float, metavar="N", help="requests per minute")
    limits.add_argument("--tpm", type=_positive_float, metavar="N", help="tokens per minute")
    limits.add_argument(
        "--redis",
        metavar="URL",
        help="keep the RPM/TPM quota in Redis (redis://host:6379/0), shared by every "
        "anyfan run, Fan or process using the same quota key (needs anyfan[redis])",
    )
    limits.add_argument(
        "--quota-key",
        metavar="NAME",
        help="the quota's name in Redis (default: derived from --base-url and a hash of "
        "the API key, never the key itself)",
    )
    limits.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"most requests in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    limits.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop (asyncio uses uvloop when installed; default: asyncio)",
    )
    limits.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"most time one attempt may take (default: {DEFAULT_TIMEOUT:g})",
    )
    limits.add_argument(
        "--http-client",
        choices=CLIENTS,
        default="auto",
        help="builtin, aiohttp (asyncio only), or httpx2/httpx (default: auto: builtin on "
        "every backend)",
    )
    limits.add_argument(
        "--max-response-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_RESPONSE_BYTES,
        metavar="N",
        help="largest response body read; a larger one fails its line "
        f"(default: {DEFAULT_MAX_RESPONSE_BYTES:,}, 64 MiB)",
    )
    parser.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=DEFAULT_ATTEMPTS,
        metavar="N",
        help=f"times a request is sent before its error is final (default: {DEFAULT_ATTEMPTS})",
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key (default: OPENAI_API_KEY)",
    )
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--restart", action="store_true", help="discard the existing results and start over"
    )
    again.add_argument(
        "--force",
        action="store_true",
        help="keep the existing results even though the input or options changed",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the requests whose result is an error; their new results supersede "
        "the errors",
    )
    parser.add_argument(
        "--progress",
        choices=tuple(_PROGRESS),
        default="auto",
        help="live bar, plain periodic lines, or none (default: auto, a bar on a terminal)",
    )


def check_base_url(url: str) -> str:
    """Return ``url`` without a trailing slash if it is an http(s) URL with a host.

    Raises:
        ValueError: It is not.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"--base-url must be an http:// or https:// URL with a host, got {redact_url(url)[0]!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            f"--base-url cannot have a query or a fragment, got {redact_url(url)[0]!r}"
        )
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """``url`` without any user name or password in it, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost``, 127.0.0.0/8 or ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProblemPrinter:
    """Prints the first few malformed or duplicate lines as they are found; counts the rest."""

    def __init__(self, stream: TextIO, limit: int = SHOWN_PROBLEMS) -> None:
        self.stream = stream
        self.limit = limit
        self.seen = 0

    def __call__(self, problem: LineProblem) -> None:
        """Report one problem line."""
        self.seen += 1
        if self.seen <= self.limit:
            print(f"anyfan run: {problem.message} (recorded as an error)", file=self.stream)

    def finish(self) -> None:
        """Say how many problems were not shown."""
        hidden = self.seen - self.limit
        if hidden > 0:
            print(
                f"anyfan run: ... and {hidden:,} more problem lines (see the results file)",
                file=self.stream,
            )


def _fail(message: str, code: int = 2) -> int:
    print(f"anyfan run: error: {message}", file=sys.stderr)
    return code


def _uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run_on(backend: str, fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` on ``backend`` (asyncio with uvloop where installed)."""
    if backend == "asyncio" and _uvloop():
        return anyio.run(fn, *args, backend="asyncio", backend_options={"use_uvloop": True})
    return anyio.run(fn, *args, backend=backend)


def settings_from(args: argparse.Namespace, base_url: str, key: str | None) -> SendSettings:
    """The `anyfan.batch.SendSettings` the options describe."""
    return send_settings(
        base_url=base_url,
        api_key=key,
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        max_attempts=args.max_attempts,
        timeout=args.timeout,
        client=args.http_client,
        max_response_bytes=args.max_response_bytes,
        redis=args.redis,
        quota_key=args.quota_key,
    )


async def _check_store(settings: SendSettings) -> None:
    """Fail at once, before the job opens, when the shared quota's Redis is unreachable."""
    assert settings.store is not None
    try:
        await settings.store.ping()
    finally:
        await settings.store.aclose()


async def _send_then_close(job: BatchJob, settings: SendSettings) -> bool:
    try:
        return await send_until_signalled(job, settings)
    finally:
        # tests/redis_integ runs this; coverage cannot see it: anyio.connect_tcp (the store's
        # connection) resets the trace function of the frames running (coverage "trace-changed").
        if settings.store is not None:  # pragma: no cover
            with anyio.CancelScope(shield=True):
                await settings.store.aclose()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def send_until_signalled(job: BatchJob, settings: SendSettings) -> bool:
    """`anyfan.batch.send`, stopped cleanly by SIGINT or SIGTERM; return whether it was.

    On the first signal the requests in flight are cancelled and what has
    finished is already on disk; a second one interrupts at once.
    """
    interrupted = False
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        if _in_main_thread():

            async def watch(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    task_status.started()
                    async for _ in signals:
                        interrupted = True
                        tg.cancel_scope.cancel()
                        return

            await tg.start(watch)  # the handlers are in place before any request goes out
        try:
            await send(job, settings)
        except Exception as exc:  # re-raised as it is, not inside an ExceptionGroup
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return interrupted


def _shown_client(name: str) -> str:
    return "the built-in HTTP client" if name == "builtin" else name


def _limits_text(args: argparse.Namespace, settings: SendSettings) -> str:
    limits = [
        f"{value:,.0f} {unit}" for value, unit in ((args.rpm, "RPM"), (args.tpm, "TPM")) if value
    ]
    text = ", ".join(limits) if limits else "no rate limit"
    if limits and settings.store is not None:
        text += f" shared in Redis ({settings.store!r}, quota {settings.quota_key})"
    return text


def main(args: argparse.Namespace) -> int:
    """Run ``anyfan run``; return the exit code."""
    try:
        base_url = check_base_url(args.base_url)
    except ValueError as exc:
        return _fail(str(exc))
    key = os.environ.get(args.api_key_env) or None
    if key is None and not is_loopback(base_url):
        return _fail(
            f"no API key: set the environment variable {args.api_key_env} (or name another "
            f"one with --api-key-env) to call {shown_url(base_url)}. Only a local server "
            "(localhost, 127.0.0.1, ::1) may be called without a key."
        )
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        return _fail("--backend trio needs trio: pip install 'anyfan[trio]'")
    try:
        client = choose_client(args.backend, args.http_client)
    except (ImportError, ValueError) as exc:
        return _fail(str(exc))
    try:
        settings = settings_from(args, base_url, key)
    except (ImportError, ValueError) as exc:
        return _fail(str(exc))
    if settings.store is not None:
        try:
            anyio.run(_check_store, settings, backend=args.backend)  # one ping: no uvloop needed
        except StoreUnavailable as exc:  # pragma: no cover - as in _send_then_close
            return _fail(str(exc))
    problems = ProblemPrinter(sys.stderr, SHOWN_PROBLEMS)
    try:
        job = BatchJob.open(
            args.requests,
            args.output,
            job_options(settings),
            restart=args.restart,
            force=args.force,
            default_url=args.endpoint,
            on_problem=problems,
            secrets=[key] if key else [],
            retry_failed=args.retry_failed,
        )
    except BatchError as exc:
        return _fail(scrub(str(exc), key))
    except OSError as exc:
        return _fail(f"{exc.filename or args.requests}: {exc.strerror or exc}")
    except ValueError as exc:
        return _fail(str(exc))
    interrupted = False
    try:
        shape = input_shape(args.requests)
        if shape == "empty":
            print(f"anyfan run: {args.requests} is empty: nothing to send", file=sys.stderr)
        elif shape is not None:
            kind = "a JSON array" if shape == "array" else "pretty-printed JSON"
            print(f"anyfan run: {args.requests} looks like {kind}: {NOT_JSONL}", file=sys.stderr)
        if job.repaired_bytes:
            print(
                f"anyfan run: cut a torn last line ({job.repaired_bytes:,} bytes) off "
                f"{args.output}; that request is sent again",
                file=sys.stderr,
            )
        if job.resumed:
            print(
                f"anyfan run: resuming: {job.counters.already_done:,} lines already answered",
                file=sys.stderr,
            )
        mode = _PROGRESS[args.progress]
        total = None if mode == "off" else count_lines(args.requests)
        job.progress = make_progress(mode, total, initial=job.counters.already_done)
        loop = "asyncio + uvloop" if args.backend == "asyncio" and _uvloop() else args.backend
        print(
            f"anyfan run: {shown_url(base_url)} with {_shown_client(client)} on {loop}, "
            f"concurrency {args.concurrency}, {_limits_text(args, settings)}, "
            f"up to {args.max_attempts} attempts",
            file=sys.stderr,
            flush=True,
        )
        interrupted = bool(run_on(args.backend, _send_then_close, job, settings))
    except JobStopped:
        pass  # the summary says why, and the exit code is EXIT_STOPPED
    except KeyboardInterrupt:
        interrupted = True
    except OSError as exc:  # writing the results failed (a full disk, say); they stay whole
        return _fail(f"{args.output}: {exc.strerror or exc}", 1)
    finally:
        job.close()
    problems.finish()
    summary = job.summary()
    print(summary.format(rpm_limit=args.rpm, tpm_limit=args.tpm), flush=True)
    if summary.stopped is not None:
        print(
            f"anyfan run: stopped: {summary.stopped}. Every finished result is in "
            f"{args.output}; fix the cause and rerun the same command to send the rest",
            file=sys.stderr,
        )
    elif interrupted:
        print(
            "anyfan run: interrupted; every finished result is in "
            f"{args.output}: rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return summary.exit_code
