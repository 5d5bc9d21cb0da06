"""One quota for many processes, for real: OS processes, `anyfan run` jobs and a Dask cluster
against the simulator's per-key RPM limit, with the quota in a real Redis."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hiredis")
pytest.importorskip("uvicorn")

import anyfan
import anyfan.openai
import anyfan.redis
from anyfan.sim import ServerLimits, Simulator

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
#: The simulator's quota: 3,000 requests a minute, enforced as 50 in each second.
RPM = 3_000


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def sim() -> Any:
    with Simulator(limits=ServerLimits(rpm=RPM)) as simulator:
        yield simulator


def test_processes_on_both_backends_share_one_quota(
    redis_url: str, redis_prefix: str, sim: Simulator
) -> None:
    backends = (
        ["asyncio", "trio", "asyncio"] if importlib.util.find_spec("trio") else ["asyncio"] * 3
    )
    key = redis_prefix + "workers"
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "quota_worker.py"),
                redis_url,
                sim.base_url,
                key,
                str(RPM),
                "40",
                backend,
            ],
            stdout=subprocess.PIPE,
            env=_env(),
        )
        for backend in backends
    ]
    codes = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    elapsed = time.monotonic() - started
    assert [c.get("200") for c in codes] == [40, 40, 40]
    assert sim.counters().rate_limited == 0
    # 120 requests at 50 a second (after a burst of a few) cannot take under about 2.3 s.
    assert elapsed >= 2.2


def test_openai_fan_keeps_its_quotas_in_the_store(redis_url: str, sim: Simulator) -> None:
    openai = pytest.importorskip("openai")
    store = anyfan.redis.RedisStore(redis_url)
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-very-secret-key")
    chat = anyfan.openai.fan(client, rpm=RPM, tpm=1_000_000, store=store)
    rates = chat.limits  # type: ignore[attr-defined]
    keys = [rate.key for rate in rates]
    assert keys[0].endswith(":rpm")
    assert keys[1].endswith(":tpm")
    assert keys[0].startswith("{openai:127.0.0.1:")
    assert keys[0].split("}")[0] == keys[1].split("}")[0]  # one hash tag: one round trip
    assert all("very-secret" not in key for key in keys)
    assert "very-secret" not in repr(rates)
    assert anyfan.openai.quota_key("https://api.openai.com/v1/", "k", "gpt-4o-2024-08-06") == (
        anyfan.openai.quota_key("https://api.openai.com/v1", "k") + ":gpt-4o"
    )

    async def ask(request: dict[str, Any]) -> Any:
        return await chat.client.chat.completions.create(**request)

    import anyio

    async def run() -> int:
        request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        replies = await chat.map(ask, [{**request, "max_tokens": 1}] * 5)
        await store.aclose()
        await client.close()
        return len(replies)

    assert anyio.run(run) == 5
    assert store.round_trips >= 5
    with pytest.raises(TypeError, match="key="):
        anyfan.openai.request_limits(rpm=10, store=store)


def _run_job(requests: Path, results: Path, redis_url: str, base_url: str) -> Any:
    return subprocess.Popen(
        [sys.executable, "-m", "anyfan", "run", str(requests), "-o", str(results),
         "--base-url", base_url, "--rpm", str(RPM), "--redis", redis_url,
         "--quota-key", "shared-job", "--concurrency", "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )  # fmt: skip


def test_two_anyfan_run_jobs_share_one_quota(
    tmp_path: Path, redis_url: str, sim: Simulator
) -> None:
    jobs = []
    for part in range(2):
        requests = tmp_path / f"part{part}.jsonl"
        line = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        requests.write_text(
            "".join(json.dumps({**line, "user": f"{part}-{i}"}) + "\n" for i in range(60))
        )
        jobs.append(_run_job(requests, tmp_path / f"out{part}.jsonl", redis_url, sim.base_url))
    outputs = [job.communicate(timeout=90) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    assert "shared in Redis" in outputs[0][1]
    assert sim.counters().rate_limited == 0
    assert sim.counters().admitted == 120


def test_anyfan_run_says_at_once_when_redis_is_unreachable(tmp_path: Path, sim: Simulator) -> None:
    from redis_server import free_port

    requests = tmp_path / "r.jsonl"
    requests.write_text('{"model": "m", "messages": []}\n')
    job = _run_job(
        requests, tmp_path / "o.jsonl", f"redis://:pw@127.0.0.1:{free_port()}", sim.base_url
    )
    _, err = job.communicate(timeout=60)
    assert job.returncode != 0
    assert "cannot reach Redis at redis://:***@127.0.0.1" in err
    assert ":pw@" not in err
    assert not (tmp_path / "o.jsonl").exists()
    assert sim.counters().requests == 0


def test_a_dask_cluster_keeps_to_one_quota(
    redis_url: str, redis_prefix: str, sim: Simulator
) -> None:
    distributed = pytest.importorskip("distributed")
    base_url, key = sim.base_url, redis_prefix + "dask"

    def partition(items: list[int]) -> list[int]:
        # Runs in a Dask worker process: one store per process, one key for all.
        import urllib.request

        import anyfan
        import anyfan.redis

        rate = anyfan.Rate(RPM, per=60, store=anyfan.redis.RedisStore(redis_url), key=key)

        def post(i: int) -> int:
            request = urllib.request.Request(
                base_url + "/chat/completions",
                data=json.dumps(
                    {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                ).encode(),
                headers={"Authorization": "Bearer sk-dask", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        return anyfan.blocking.map(post, items, limits=[rate], concurrency=8)

    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        parts = [list(range(p * 25, (p + 1) * 25)) for p in range(4)]
        statuses = [s for part in client.gather(client.map(partition, parts)) for s in part]
    assert statuses == [200] * 100
    assert sim.counters().rate_limited == 0


def _requests_file(path: Path, n: int) -> Path:
    line = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    path.write_text("".join(json.dumps({**line, "user": str(i)}) + "\n" for i in range(n)))
    return path


def test_the_cli_in_process_with_redis(
    tmp_path: Path, redis_url: str, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from anyfan import cli

    requests = _requests_file(tmp_path / "r.jsonl", 5)
    base = ["run", str(requests), "-o", str(tmp_path / "o.jsonl"), "--base-url", sim.base_url]
    assert cli.main([*base, "--rpm", "600", "--redis", redis_url]) == 0
    assert "shared in Redis" in capsys.readouterr().err
    assert cli.main([*base, "--redis", "http://nowhere"]) == 2
    assert "redis://" in capsys.readouterr().err
    from redis_server import free_port

    assert cli.main([*base, "--rpm", "600", "--redis", f"redis://127.0.0.1:{free_port()}"]) == 2
    assert "cannot reach Redis" in capsys.readouterr().err


def test_the_batch_api_with_redis(
    tmp_path: Path, redis_url: str, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyfan.batch

    requests = _requests_file(tmp_path / "r.jsonl", 5)
    summary = anyfan.batch.run_blocking(
        requests, tmp_path / "o.jsonl", base_url=sim.base_url, rpm=600, redis=redis_url
    )
    assert summary.exit_code == 0
    monkeypatch.setitem(sys.modules, "anyfan.redis", None)  # as if hiredis were missing
    with pytest.raises(ImportError, match=r"anyfan\[redis\]"):
        anyfan.batch.send_settings(redis=redis_url)
