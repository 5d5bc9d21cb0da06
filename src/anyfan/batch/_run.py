"""`run` and `run_blocking`: answer a file of requests from Python, as ``anyfan run`` does."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from ..openai import DEFAULT_ATTEMPTS
from ..openai import quota_key as default_quota_key
from ..transport import DEFAULT_MAX_RESPONSE_BYTES, check_max_response_bytes
from ._errors import JobStopped
from ._job import BatchJob
from ._parse import DEFAULT_URL
from ._progress import make_progress
from ._send import SendSettings, send

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from ..blocking import Loop
    from ..transport import ClientName
    from ._parse import LineProblem
    from ._progress import ProgressMode
    from ._stats import BatchSummary

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_CONCURRENCY: Final = 100
DEFAULT_TIMEOUT: Final = 600.0
#: Sent when no key is given: local servers ignore it, and the simulator
#: (like the real API) wants some bearer token.
PLACEHOLDER_KEY: Final = "sk-anyfan-local-no-key"


def send_settings(
    *,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    tpm: float | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = DEFAULT_TIMEOUT,
    client: ClientName = "auto",
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    redis: str | None = None,
    quota_key: str | None = None,
) -> SendSettings:
    """The `SendSettings` for these options, with the key as a bearer token (never stored).

    With ``redis`` (a ``redis://`` URL), the RPM and TPM quotas live in Redis
    under ``quota_key`` (by default `anyfan.openai.quota_key` of ``base_url``
    and ``api_key``), shared by every job, Fan or process using the same name.

    Raises:
        ImportError: ``redis`` is given but the ``redis`` extra is not installed.
        ValueError: ``redis`` is not a Redis URL.
    """
    token = api_key or PLACEHOLDER_KEY
    store = None
    if redis is not None:
        try:
            from ..redis import RedisStore
        except ImportError as exc:
            raise ImportError(
                "sharing a quota in Redis needs the redis extra: pip install 'anyfan[redis]'"
            ) from exc
        store = RedisStore(redis)
        quota_key = quota_key or default_quota_key(base_url, token)
    return SendSettings(
        base_url=base_url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_attempts=max_attempts,
        timeout=timeout,
        client=client,
        secret=api_key,
        max_response_bytes=check_max_response_bytes(max_response_bytes),
        store=store,
        quota_key=quota_key,
    )


def job_options(settings: SendSettings) -> dict[str, object]:
    """The options a job's state file records: a change to them is caught on resume."""
    return {"base_url": settings.base_url, "max_attempts": settings.max_attempts}


async def run(
    requests: str | os.PathLike[str],
    results: str | os.PathLike[str],
    *,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None = None,
    endpoint: str = DEFAULT_URL,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    tpm: float | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = DEFAULT_TIMEOUT,
    client: ClientName = "auto",
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    restart: bool = False,
    force: bool = False,
    retry_failed: bool = False,
    progress: ProgressMode = "off",
    on_problem: Callable[[LineProblem], None] | None = None,
    redis: str | None = None,
    quota_key: str | None = None,
) -> BatchSummary:
    """Answer every request in ``requests`` into ``results``, exactly once, across reruns.

    The library form of ``anyfan run``: the same file formats, pacing,
    retries and resume. Run it again with the same arguments after a crash or
    a cancellation and it sends only the lines that are not answered yet.

    Args:
        requests: The requests file: one JSON object per line, either a bare
            request body or a Batch API line (``custom_id``, ``url``, ``body``).
        results: The results file (JSONL, one record per request); resumed if it exists.
        base_url: The API, such as ``https://api.openai.com/v1``.
        api_key: Sent as a bearer token; never written anywhere.
        endpoint: Where bare request bodies are posted, such as ``/v1/chat/completions``.
        concurrency: Most requests in flight at once.
        rpm: Requests per minute allowed, or ``None``.
        tpm: Tokens per minute allowed, or ``None``.
        max_attempts: Most times one request is sent.
        timeout: Seconds one attempt may take, or ``None``.
        client: The HTTP client: ``"auto"``, ``"builtin"``, ``"aiohttp"`` or ``"httpx"``.
        max_response_bytes: The largest response body read (64 MiB by
            default); past it the line fails with a ``response_too_large``
            error, so memory stays bounded whatever a server sends.
        restart: Discard existing results and start over.
        force: Keep existing results even though the input or options changed.
        retry_failed: Send again the lines whose result is an error; each new
            result supersedes the error (a line's last record is its result,
            see `read_results`).
        progress: ``"off"`` (the default), ``"bar"``, ``"lines"`` or ``"auto"``.
        on_problem: Called with each malformed or duplicate line.
        redis: A ``redis://`` URL: keep the RPM and TPM quotas in Redis, so that
            several jobs (on one host or many) share them; see `send_settings`.
        quota_key: The quota's name in Redis; by default derived from
            ``base_url`` and a hash of ``api_key`` (`anyfan.openai.quota_key`).

    Returns:
        The job's `BatchSummary` (its ``exit_code`` is what ``anyfan run``
        returns). A job stopped by a failure of the whole job (401, 403,
        ``insufficient_quota``) returns at once, with ``stopped`` saying why
        and exit code 3: rerun it once the cause is fixed.

    Raises:
        BatchError: The results file does not match the input or options
            (see ``restart`` and ``force``), or is damaged.
        OSError: A file could not be read or written.
        ValueError: An option is out of range.
        StoreUnavailable: ``redis`` is given and Redis cannot be reached (at
            once, before anything is sent).
    """
    settings = send_settings(
        base_url=base_url,
        api_key=api_key,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_attempts=max_attempts,
        timeout=timeout,
        client=client,
        max_response_bytes=max_response_bytes,
        redis=redis,
        quota_key=quota_key,
    )
    if settings.store is not None:
        await settings.store.ping()  # unreachable: say so now, before the job opens
    try:
        with BatchJob.open(
            requests,
            results,
            job_options(settings),
            restart=restart,
            force=force,
            default_url=endpoint,
            on_problem=on_problem,
            secrets=[api_key] if api_key else [],
            retry_failed=retry_failed,
        ) as job:
            if progress != "off":
                from ._lines import count_lines

                job.progress = make_progress(
                    progress, count_lines(requests), initial=job.counters.already_done
                )
            with contextlib.suppress(JobStopped):  # the summary says why
                await send(job, settings)
            return job.summary()
    finally:
        if settings.store is not None:
            await settings.store.aclose()


def run_blocking(
    requests: str | os.PathLike[str],
    results: str | os.PathLike[str],
    *,
    loop: Loop | None = None,
    base_url: str = DEFAULT_BASE_URL,
    api_key: str | None = None,
    endpoint: str = DEFAULT_URL,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    tpm: float | None = None,
    max_attempts: int = DEFAULT_ATTEMPTS,
    timeout: float | None = DEFAULT_TIMEOUT,
    client: ClientName = "auto",
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    restart: bool = False,
    force: bool = False,
    retry_failed: bool = False,
    progress: ProgressMode = "off",
    on_problem: Callable[[LineProblem], None] | None = None,
    redis: str | None = None,
    quota_key: str | None = None,
) -> BatchSummary:
    """`run` from synchronous code (scripts, notebooks); the arguments are the same.

    It runs on ``loop``, by default `anyfan.blocking.default_loop`, and blocks
    until the job is done. Ctrl-C cancels it; every finished result is kept.
    """
    from ..blocking import default_loop

    return (loop or default_loop()).call(
        run,
        requests,
        results,
        base_url=base_url,
        api_key=api_key,
        endpoint=endpoint,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_attempts=max_attempts,
        timeout=timeout,
        client=client,
        max_response_bytes=max_response_bytes,
        restart=restart,
        force=force,
        retry_failed=retry_failed,
        progress=progress,
        on_problem=on_problem,
        redis=redis,
        quota_key=quota_key,
    )
