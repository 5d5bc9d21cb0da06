"""`Simulator`: the public handle that runs the server on its own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar

from ._app import SimApp
from ._config import Faults, Latency, ServerLimits
from ._state import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_MODELS,
    DEFAULT_REPLY_TOKENS,
    Content,
    SimState,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from ._counters import Counters

T = TypeVar("T")
LoopName = Literal["auto", "uvloop", "asyncio"]

_BACKLOG: Final = 4096
#: Seconds `start` and `stop` wait for the server thread before giving up.
_THREAD_TIMEOUT: Final = 30.0
_MISSING_EXTRA: Final = "anyfan.sim needs uvicorn and httptools: pip install 'anyfan[sim]'"


def _loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ImportError("loop='uvloop' needs uvloop: pip install uvloop") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535


def _check(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be an anyfan.sim.{kind.__name__}, got {value!r}")


class Simulator:
    """An OpenAI-compatible HTTP server on 127.0.0.1, served from its own thread.

    It answers ``POST /v1/chat/completions`` (plain and streamed),
    ``/v1/completions`` and ``/v1/embeddings`` and ``GET /v1/models`` with
    deterministic fake content, enforces per-key RPM/TPM limits the way the
    provider does, injects seeded faults, and counts what it sees. Use it as a
    context manager, or call `start` and `stop`::

        with Simulator(limits=ServerLimits(rpm=600)) as sim:
            client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test")

    Settings can change while it runs, from any thread. Every setter replaces
    that setting whole.

    Args:
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        limits: Rate limits per API key.
        faults: Fault probabilities.
        latency: Latency model.
        seed: Seed of the fake content, the fault dice and the latency jitter.
        reply_tokens: Shortest and longest natural reply, in tokens.
        models: Model ids that ``GET /v1/models`` lists (any model is accepted).
        embedding_dimensions: Embedding length when a request sets no ``dimensions``.
        loop: Event loop of the server thread: ``"uvloop"``, ``"asyncio"``, or
            ``"auto"`` (uvloop when installed).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits | None = None,
        faults: Faults | None = None,
        latency: Latency | None = None,
        seed: int = 0,
        reply_tokens: tuple[int, int] = DEFAULT_REPLY_TOKENS,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
        loop: LoopName = "auto",
    ) -> None:
        limits = ServerLimits() if limits is None else limits
        faults = Faults() if faults is None else faults
        latency = Latency() if latency is None else latency
        _check("limits", limits, ServerLimits)
        _check("faults", faults, Faults)
        _check("latency", latency, Latency)
        if not _is_port(port):
            raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
        if loop not in ("auto", "uvloop", "asyncio"):
            raise ValueError(f"loop must be 'auto', 'uvloop' or 'asyncio', got {loop!r}")
        content = Content(seed, reply_tokens, tuple(models), embedding_dimensions)
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop_name: LoopName = loop
        self._state = SimState(limits=limits, faults=faults, latency=latency, content=content)
        self._app = SimApp(self._state)
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._final: Counters | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._running else "stopped"
        return f"<anyfan.sim.Simulator {where}>"

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._running

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, such as ``http://127.0.0.1:54321``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client as ``base_url`` (the root plus ``/v1``)."""
        return self.url + "/v1"

    def start(self) -> Self:
        """Bind the port and start serving on a new thread; return once it accepts requests."""
        try:
            import httptools  # noqa: F401 - checked here so the error names the extra
            import uvicorn  # noqa: F401
        except ImportError as exc:
            raise ImportError(_MISSING_EXTRA) from exc
        loop_factory = _loop_factory(self._loop_name)
        with self._lock:
            if self._running:
                raise RuntimeError("the simulator is already running")
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.create_server(
                (self._host, self._requested_port), family=family, backlog=_BACKLOG
            )
            self._port = sock.getsockname()[1]
            self._ready.clear()
            self._error = None
            thread = threading.Thread(
                target=self._run,
                args=(sock, loop_factory),
                name=f"anyfan-sim:{self._port}",
                daemon=True,
            )
            thread.start()
            if not self._ready.wait(_THREAD_TIMEOUT) or self._failure() is not None:
                sock.close()
                thread.join(_THREAD_TIMEOUT)
                raise RuntimeError("the simulator failed to start") from self._failure()
            self._thread = thread
            self._final = None
            self._running = True
        return self

    def stop(self) -> None:
        """Stop serving: in-flight requests are dropped, hung ones included. Idempotent."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            assert self._loop is not None
            assert self._stopping is not None
            self._loop.call_soon_threadsafe(self._stopping.set)
            thread = self._thread
        assert thread is not None
        thread.join(_THREAD_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - only if the loop itself is wedged
            raise RuntimeError("the simulator's thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _failure(self) -> BaseException | None:
        return self._error

    def _run(
        self, sock: socket.socket, loop_factory: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(self._serve(sock))
        except BaseException as exc:  # reported by start(), which is waiting for us
            self._error = exc
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        import uvicorn
        from uvicorn.server import ServerState

        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        config = uvicorn.Config(
            self._app,
            http="httptools",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        config.load()
        server_state = ServerState()

        # What uvicorn.Server.startup does, minus its signal handling and 0.1 s
        # shutdown polling: a simulator is started and stopped in every test.
        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server_state, app_state={}, _loop=loop
            )

        server = await loop.create_server(protocol, sock=sock, backlog=_BACKLOG)
        self._state.reset()
        self._loop = loop
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            tasks = list(server_state.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for connection in list(server_state.connections):
                connection.transport.abort()
            await server.wait_closed()
            self._final = self._state.counters()

    # -- settings and counters --------------------------------------------------------

    def _call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the server's thread while it serves, else right here."""
        with self._lock:
            if not self._running or self._loop is None:
                return function()
            future: concurrent.futures.Future[T] = concurrent.futures.Future()

            def run() -> None:
                try:
                    future.set_result(function())
                except BaseException as exc:  # pragma: no cover - state methods do not raise
                    future.set_exception(exc)

            self._loop.call_soon_threadsafe(run)
        return future.result(_THREAD_TIMEOUT)

    @property
    def limits(self) -> ServerLimits:
        """The rate limits in force."""
        return self._state.limits

    @property
    def faults(self) -> Faults:
        """The fault probabilities in force."""
        return self._state.faults

    @property
    def latency(self) -> Latency:
        """The latency model in force."""
        return self._state.latency

    def configure(
        self,
        *,
        limits: ServerLimits | None = None,
        faults: Faults | None = None,
        latency: Latency | None = None,
    ) -> None:
        """Replace any of the settings; new limits give every key a fresh budget."""
        if limits is not None:
            _check("limits", limits, ServerLimits)
        if faults is not None:
            _check("faults", faults, Faults)
        if latency is not None:
            _check("latency", latency, Latency)
        self._call(lambda: self._state.configure(limits=limits, faults=faults, latency=latency))

    def set_limits(self, *, rpm: int | None = None, tpm: int | None = None) -> None:
        """Set the per-key limits (``None``: no such limit); every key starts afresh."""
        self.configure(limits=ServerLimits(rpm=rpm, tpm=tpm))

    def set_faults(self, **probabilities: Any) -> None:
        """Set the fault probabilities, such as ``set_faults(server_error=0.05)``.

        Args:
            **probabilities: `Faults` fields; those not given become 0.
        """
        self.configure(faults=Faults(**probabilities))

    def set_latency(self, **model: Any) -> None:
        """Set the latency model, such as ``set_latency(ttft_ms=200, itl_ms=10)``.

        Args:
            **model: `Latency` fields; those not given become 0.
        """
        self.configure(latency=Latency(**model))

    def counters(self) -> Counters:
        """Return a snapshot of the counters (after `stop`: as they were when it stopped)."""
        if not self._running and self._final is not None:
            return self._final
        return self._call(self._state.counters)

    def reset(self) -> None:
        """Zero the counters and start rate limits, dice and jitter afresh; keep the settings."""
        self._final = None
        self._call(self._state.reset)

    def wait_until_idle(self, timeout: float = _THREAD_TIMEOUT) -> Counters:
        """Block until no API request is in flight, then return the counters.

        Useful after a client gave up on requests (timeouts, hangs): the server
        sees the disconnects a moment after the client's side has moved on.

        Raises:
            TimeoutError: Requests were still in flight after ``timeout`` seconds.
        """
        with self._lock:
            loop = self._loop if self._running else None
        if loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._app.until_idle(), loop)
            try:
                future.result(timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError(f"requests still in flight after {timeout} s") from None
        return self.counters()
