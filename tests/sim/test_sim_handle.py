"""The `Simulator` handle: lifecycle, settings from other threads, failures."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest

from anyfan.sim import Faults, Latency, ServerLimits, Simulator
from anyfan.sim import _server as server_module

pytest.importorskip("uvicorn")


def _chat(sim: Simulator, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        sim.base_url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": "Bearer sk-test", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_lifecycle_and_restart() -> None:
    sim = Simulator(loop="asyncio")
    assert repr(sim) == "<anyfan.sim.Simulator stopped>"
    with pytest.raises(RuntimeError, match="not been started"):
        _ = sim.port
    with sim:
        assert sim.running
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
        assert repr(sim) == f"<anyfan.sim.Simulator {sim.base_url}>"
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        assert _chat(sim)[0] == 200
    assert not sim.running
    sim.stop()  # idempotent
    finished = sim.counters()
    assert finished.responses == {200: 1}
    assert finished.cpu_seconds > 0
    sim.start()
    try:
        assert sim.counters().requests == 0  # a restart starts counting afresh
        assert _chat(sim)[0] == 200
    finally:
        sim.stop()


def test_stop_closes_idle_keep_alive_connections() -> None:
    import http.client

    sim = Simulator().start()
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        connection.request("GET", "/sim/counters")
        assert connection.getresponse().read()
        sim.stop()
        assert sim.wait_until_idle().requests == 0
        connection.request("GET", "/sim/counters")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            connection.getresponse()
    finally:
        connection.close()
        sim.stop()


def test_settings_change_from_another_thread() -> None:
    with Simulator(limits=ServerLimits(rpm=1)) as sim:
        assert _chat(sim)[0] == 200
        assert _chat(sim)[0] == 429
        errors: list[BaseException] = []

        def loosen() -> None:
            try:
                sim.set_limits(rpm=1000)
                sim.set_latency(ttft_ms=0.5)
                sim.set_faults(server_error=1.0)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=loosen)
        thread.start()
        thread.join()
        assert not errors
        assert sim.limits == ServerLimits(rpm=1000)
        assert sim.latency == Latency(ttft_ms=0.5)
        assert sim.faults == Faults(server_error=1.0)
        assert _chat(sim)[0] == 500
        sim.configure(faults=Faults())
        assert _chat(sim)[0] == 200
        sim.reset()
        assert sim.counters().requests == 0


def test_configure_before_start_and_reset_after_stop() -> None:
    sim = Simulator()
    sim.set_faults(unavailable=1.0)
    assert sim.counters().requests == 0  # readable before it ever ran
    with sim:
        assert _chat(sim)[0] == 503
    assert sim.counters().faults == {"503": 1}
    sim.reset()
    assert sim.counters().faults == {}


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"port": -1}, ValueError, "port must be an int"),
        ({"port": True}, ValueError, "port must be an int"),
        ({"loop": "tokio"}, ValueError, "loop must be"),
        ({"limits": {"rpm": 1}}, TypeError, "limits must be an anyfan.sim.ServerLimits"),
        ({"faults": 0.5}, TypeError, "faults must be an anyfan.sim.Faults"),
        ({"latency": 1}, TypeError, "latency must be an anyfan.sim.Latency"),
        ({"reply_tokens": (3, 1)}, ValueError, "reply_tokens"),
    ],
)
def test_bad_options_are_refused_at_construction(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        Simulator(**options)


def test_bad_settings_at_runtime_are_refused_in_the_caller() -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match="rpm"):
        sim.set_limits(rpm=0)
    with pytest.raises(TypeError, match="limits must be"):
        sim.configure(limits=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="faults must be"):
        sim.configure(faults=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="latency must be"):
        sim.configure(latency=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        sim.set_faults(meteor=1.0)
    assert sim.limits == ServerLimits()


def test_a_taken_port_fails_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sim = Simulator(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            sim.start()
        assert not sim.running


def test_a_failing_server_thread_fails_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no config today")

    monkeypatch.setattr(uvicorn, "Config", broken)
    sim = Simulator()
    with pytest.raises(RuntimeError, match="failed to start") as caught:
        sim.start()
    assert str(caught.value.__cause__) == "no config today"
    assert not sim.running


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r"pip install 'anyfan\[sim\]'"):
        Simulator().start()


def test_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    assert server_module._loop_factory("asyncio") is asyncio.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert server_module._loop_factory("auto") is asyncio.new_event_loop
    with pytest.raises(ImportError, match="needs uvloop"):
        server_module._loop_factory("uvloop")


def test_wait_until_idle_times_out_while_a_request_hangs() -> None:
    with Simulator(faults=Faults(hang=1.0)) as sim:
        with socket.create_connection(("127.0.0.1", sim.port)) as client:
            body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
            client.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer k\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            deadline = time.monotonic() + 10
            while not sim.counters().in_flight and time.monotonic() < deadline:
                time.sleep(0.001)  # until the request has arrived
            with pytest.raises(TimeoutError, match="still in flight"):
                sim.wait_until_idle(timeout=0.01)
        counters = sim.wait_until_idle()
    assert counters.faults == {"hang": 1}
    assert counters.in_flight == 0


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_loopback() -> None:
    try:
        sim = Simulator(host="::1").start()
    except OSError:  # pragma: no cover - IPv6 configured off
        pytest.skip("no IPv6 loopback here")
    try:
        assert sim.base_url == f"http://[::1]:{sim.port}/v1"
        assert _chat(sim)[0] == 200
    finally:
        sim.stop()
