"""The redis-server fixture itself: it answers, and it can be killed and restarted on its port."""

from __future__ import annotations

import socket

from redis_server import RedisServer, _ping


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def test_redis_url_answers(redis_url: str) -> None:
    assert redis_url.startswith("redis://")
    with socket.create_connection(("127.0.0.1", _port(redis_url)), timeout=2) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(64).startswith(b"+PONG")


def test_stop_and_restart_on_the_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    assert redis_server.running
    assert _ping(port)
    redis_server.stop()
    assert not redis_server.running
    assert not _ping(port)
    redis_server.start()
    assert redis_server.port == port
    assert _ping(port)


def test_prefixes_differ(redis_prefix: str) -> None:
    assert redis_prefix.startswith("anyfan-test:")
