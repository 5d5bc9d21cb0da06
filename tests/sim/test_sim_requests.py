"""Checking request bodies, counting, and the response builders (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anyfan.sim import Counters
from anyfan.sim._counters import Tally
from anyfan.sim._limiter import Admission
from anyfan.sim._requests import BadRequest, parse_chat, parse_completions, parse_embeddings
from anyfan.sim._responses import ChunkWriter, rate_limit_error, text_completion

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x" * 8}]}


def test_chat_is_charged_prompt_plus_n_times_max_tokens() -> None:
    request = parse_chat({**CHAT, "max_tokens": 10, "n": 3})
    assert request.prompt_tokens == 3 + 4 + 2
    assert request.charge == 9 + 30
    assert request.choices == 3
    assert request.max_tokens == 10
    assert not request.stream


def test_chat_prefers_max_completion_tokens_and_defaults_to_256() -> None:
    assert parse_chat({**CHAT, "max_completion_tokens": 7, "max_tokens": 99}).max_tokens == 7
    request = parse_chat(CHAT)
    assert request.max_tokens is None
    assert request.charge == 9 + 256


def test_stream_options() -> None:
    request = parse_chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert request.stream
    assert request.include_usage
    assert not parse_chat({**CHAT, "stream": True, "stream_options": {}}).include_usage


def test_completions_write_n_replies_per_prompt_and_default_to_16_tokens() -> None:
    request = parse_completions({"model": "m", "prompt": ["abcd", "efgh"], "n": 2})
    assert request.choices == 4
    assert request.max_tokens == 16
    assert request.charge == 2 + 4 * 16
    assert parse_completions({"model": "m", "prompt": [1, 2, 3]}).choices == 1
    assert parse_completions({"model": "m", "prompt": ""}).prompt_tokens == 0


def test_embeddings_charge_their_input_only() -> None:
    request = parse_embeddings({"model": "m", "input": ["abcd", "efghi"], "dimensions": 8})
    assert request.charge == request.prompt_tokens == 3
    assert request.inputs == ["abcd", "efghi"]
    assert request.dimensions == 8
    assert not request.base64
    single = parse_embeddings({"model": "m", "input": [5, 6], "encoding_format": "base64"})
    assert single.inputs == [[5, 6]]
    assert single.base64


@pytest.mark.parametrize(
    ("parse", "body", "param"),
    [
        (parse_chat, {"messages": CHAT["messages"]}, "model"),
        (parse_chat, {"model": "m"}, "messages"),
        (parse_chat, {"model": "m", "messages": []}, "messages"),
        (parse_chat, {"model": "m", "messages": [{"content": "x"}]}, "messages[0]"),
        (parse_chat, {**CHAT, "max_tokens": 0}, "max_tokens"),
        (parse_chat, {**CHAT, "max_tokens": "5"}, "max_tokens"),
        (parse_chat, {**CHAT, "n": 129}, "n"),
        (parse_chat, {**CHAT, "stream": "yes"}, "stream"),
        (parse_chat, {**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
        (parse_chat, {**CHAT, "stream": True, "stream_options": [1]}, "stream_options"),
        (parse_completions, {"model": "m"}, "prompt"),
        (parse_completions, {"model": "m", "prompt": []}, "prompt"),
        (parse_completions, {"model": "m", "prompt": [1, "a"]}, "prompt"),
        (parse_completions, {"model": "m", "prompt": [[]]}, "prompt"),
        (parse_embeddings, {"model": "m"}, "input"),
        (parse_embeddings, {"model": "m", "input": ""}, "input"),
        (parse_embeddings, {"model": "m", "input": ["a", ""]}, "input"),
        (
            parse_embeddings,
            {"model": "m", "input": "a", "encoding_format": "hex"},
            "encoding_format",
        ),
        (parse_embeddings, {"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
    ],
)
def test_bad_bodies_name_the_parameter(parse: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.param == param
    assert caught.value.message


def test_tally_tracks_peaks_over_sliding_seconds() -> None:
    tally = Tally(0.0, cpu=1.0)
    for now in (0.0, 0.5, 0.9, 1.2, 1.3):
        tally.arrived()
        tally.admitted_at(now, tokens=10, prompt_tokens=3)
    tally.left()
    tally.responded(200)
    tally.responded(200)
    tally.fault("500")
    counters = tally.snapshot(2.0, cpu=1.5)
    assert counters.peak_admitted_per_second == 4  # 0.5, 0.9, 1.2, 1.3
    assert counters.peak_tokens_per_second == 40
    assert counters.peak_in_flight == 5
    assert counters.in_flight == 4
    assert counters.responses == {200: 2}
    assert counters.faults == {"500": 1}
    assert counters.prompt_tokens == 15
    assert counters.cpu_seconds == pytest.approx(0.5)
    assert counters.cpu_share == pytest.approx(0.25)


def test_tally_reset_keeps_requests_in_flight() -> None:
    tally = Tally(0.0, cpu=0.0)
    tally.arrived()
    tally.arrived()
    tally.reset(5.0, cpu=0.0)
    counters = tally.snapshot(5.0, cpu=0.0)
    assert (counters.requests, counters.in_flight, counters.peak_in_flight) == (0, 2, 2)
    assert counters.cpu_share == 0.0


def test_counters_round_trip_through_json() -> None:
    tally = Tally(0.0, cpu=0.0)
    tally.responded(429)
    counters = tally.snapshot(1.0, cpu=0.25)
    data = json.loads(json.dumps(counters.to_dict()))
    assert data["responses"] == {"429": 1}
    assert data["cpu_share"] == 0.25
    assert Counters.from_dict(data) == counters


def test_rate_limit_messages() -> None:
    refused = Admission([], admitted=False, kind="tokens", wait=1.2, limit=200, used=150, cost=60)
    body = json.loads(rate_limit_error("gpt-x", refused))["error"]
    assert body["message"].startswith(
        "Rate limit reached for gpt-x in organization org-anyfansim on tokens per min (TPM): "
        "Limit 200, Used 150, Requested 60. Please try again in 1.2s."
    )
    assert (body["type"], body["param"], body["code"]) == ("tokens", None, "rate_limit_exceeded")
    huge = Admission([], admitted=False, kind="tokens", wait=float("inf"), limit=200, cost=300)
    message = json.loads(rate_limit_error("gpt-x", huge))["error"]["message"]
    assert message.startswith("Request too large for gpt-x")
    assert "Limit 200, Requested 300" in message


def test_text_completion_and_its_chunks_are_valid_json() -> None:
    body = json.loads(text_completion("r", 'a "model"', [("hi", "stop")], 1, 1))
    assert body["model"] == 'a "model"'
    assert body["choices"][0] == {
        "text": "hi",
        "index": 0,
        "logprobs": None,
        "finish_reason": "stop",
    }
    writer = ChunkWriter(chat=False, rid="r", model="m", include_usage=True)
    assert writer.start(0) == b""
    events = [writer.token(0, "hi"), writer.finish(0, "length"), writer.usage(1, 1)]
    decoded = [json.loads(event.removeprefix(b"data: ")) for event in events]
    assert decoded[0]["choices"][0]["text"] == "hi"
    assert decoded[0]["usage"] is None
    assert decoded[1]["choices"][0]["finish_reason"] == "length"
    assert decoded[2]["choices"] == []
    assert decoded[2]["usage"]["total_tokens"] == 2
