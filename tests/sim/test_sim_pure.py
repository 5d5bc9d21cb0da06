"""The simulator's sans-I/O parts: durations, tokens, content, latency, dice, config."""

from __future__ import annotations

import base64
import itertools
import random
import re
import struct
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan.sim import Fault, Faults, Latency, ServerLimits
from anyfan.sim._config import as_dict
from anyfan.sim._content import (
    VOCABULARY,
    EmbeddingPool,
    reply_length,
    reply_tokens,
    request_digest,
    response_id,
)
from anyfan.sim._durations import ceil_ms, format_ms, format_ns
from anyfan.sim._faults import FaultDice
from anyfan.sim._latency import first_token_delay, reply_delay, token_offsets
from anyfan.sim._state import Content
from anyfan.sim._tokens import chat_prompt_tokens, content_text, input_tokens, text_tokens


def test_importing_the_simulator_needs_no_server_packages() -> None:
    code = (
        "import sys, anyfan, anyfan.sim, anyfan.sim.pytest_plugin; "
        "sys.exit(bool({'uvicorn', 'httptools', 'uvloop'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- Go durations ---


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (1_000, "1µs"),
        (1_500, "1.5µs"),
        (1_000_000, "1ms"),
        (20_000_000, "20ms"),
        (12_500_000, "12.5ms"),
        (1_000_000_000, "1s"),
        (51_189_000_000, "51.189s"),
        (60_000_000_000, "1m0s"),
        (360_000_000_000, "6m0s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_661_500_000_000, "1h1m1.5s"),
        (-1_500_000, "-1.5ms"),
    ],
)
def test_format_ns_matches_go(ns: int, text: str) -> None:
    assert format_ns(ns) == text


_GO = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)(ms|s))?$")


def _parse(text: str) -> float:
    match = _GO.match(text)
    assert match, text
    hours, minutes, number, unit = match.groups()
    seconds = float(number or 0) / (1000 if unit == "ms" else 1)
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + seconds


@given(st.integers(min_value=0, max_value=10**8))
def test_format_ms_round_trips(milliseconds: int) -> None:
    text = format_ms(milliseconds)
    assert abs(_parse(text) - milliseconds / 1000) < 1e-6
    assert not re.search(r"\.\d*0(ms|s)$", text), "trailing zeros are trimmed"


@pytest.mark.parametrize(
    ("seconds", "ms"), [(-1.0, 0), (0.0, 0), (1e-7, 1), (0.001, 1), (0.1, 100), (0.0015, 2)]
)
def test_ceil_ms(seconds: float, ms: int) -> None:
    assert ceil_ms(seconds) == ms


# --- tokens ---


def test_text_tokens_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [text_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


def test_content_text_reads_strings_and_text_parts() -> None:
    parts = [{"type": "text", "text": "ab"}, {"type": "image_url", "image_url": {}}, "cd", 3]
    assert content_text("hey") == "hey"
    assert content_text(parts) == "abcd"
    assert content_text(None) == ""


def test_chat_prompt_tokens() -> None:
    messages: list[object] = [
        {"role": "system", "content": "x" * 8},
        {"role": "user", "content": [{"type": "text", "text": "y" * 5}]},
        "not a message",
    ]
    assert chat_prompt_tokens(messages) == 3 + (4 + 2) + (4 + 2) + 4


def test_input_tokens_of_texts_and_token_ids() -> None:
    assert input_tokens("abcdefgh") == 2
    assert input_tokens(["abcd", "abcde"]) == 3
    assert input_tokens([1, 2, 3]) == 3
    assert input_tokens([[1, 2], [3]]) == 3


# --- content ---


def test_digest_ignores_key_order_and_delivery() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    reordered = {"max_tokens": 5, "messages": body["messages"], "model": "m"}
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    assert request_digest(body, 0) == request_digest(reordered, 0) == request_digest(streamed, 0)
    assert request_digest(body, 0) != request_digest(body, 1)
    assert request_digest(body, 0) != request_digest({**body, "max_tokens": 6}, 0)


@given(st.binary(min_size=16, max_size=16), st.integers(0, 127), st.integers(0, 300))
def test_reply_tokens_measure_as_their_count(digest: bytes, choice: int, count: int) -> None:
    tokens = reply_tokens(digest, choice, count)
    assert len(tokens) == count
    assert text_tokens("".join(tokens)) == count
    assert all(token.strip() in VOCABULARY for token in tokens)
    assert tokens == reply_tokens(digest, choice, count)


@given(st.binary(min_size=16, max_size=16), st.integers(0, 127), st.integers(1, 50))
def test_reply_length_stays_in_range(digest: bytes, choice: int, shortest: int) -> None:
    assert shortest <= reply_length(digest, choice, shortest, shortest + 7) <= shortest + 7


def test_vocabulary_is_256_distinct_words() -> None:
    assert len(set(VOCABULARY)) == 256
    assert all(len(word) == 3 for word in VOCABULARY)
    assert response_id(bytes(range(16))) == bytes(range(12)).hex()


def test_embedding_encodings_agree() -> None:
    pool = EmbeddingPool(seed=3, size=64, longest=32)
    floats = pool.floats("m", "hello", 8)
    decoded = struct.unpack("<8f", base64.b64decode(pool.base64("m", "hello", 8)))
    assert list(decoded) == floats
    assert pool.floats("m", "hello", 8) == floats
    assert len(pool.floats("m", [1, 2], 32)) == 32
    assert all(-1.0 <= x <= 1.0 for x in floats)


# --- latency ---


class _Fixed:
    """A 'random' source that always returns the same draw."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_latency_without_jitter_is_exact() -> None:
    latency = Latency(ttft_ms=100, per_prompt_token_ms=1, itl_ms=10)
    rng = _Fixed(0.9)
    assert first_token_delay(latency, 50, rng) == pytest.approx(0.150)
    assert token_offsets(latency, 50, 3, rng) == pytest.approx([0.150, 0.160, 0.170])
    assert reply_delay(latency, 50, 3, rng) == pytest.approx(0.170)
    assert reply_delay(latency, 50, 1, rng) == pytest.approx(0.150)
    assert token_offsets(latency, 50, 0, rng) == []


def test_latency_jitter_scales_within_bounds() -> None:
    latency = Latency(ttft_ms=100, itl_ms=10, jitter=0.5)
    assert first_token_delay(latency, 0, _Fixed(0.0)) == pytest.approx(0.05)
    assert first_token_delay(latency, 0, _Fixed(0.5)) == pytest.approx(0.10)
    assert reply_delay(latency, 0, 3, _Fixed(0.0)) == pytest.approx(0.05 + 0.01 * (2 - 0.25))


def test_zero_inter_token_latency_puts_every_token_at_the_first() -> None:
    latency = Latency(ttft_ms=5)
    assert token_offsets(latency, 0, 3, _Fixed(0.3)) == [0.005] * 3


@given(
    st.floats(0, 1000),
    st.floats(0.001, 100),
    st.floats(0, 1),
    st.integers(1, 200),
    st.integers(0, 2**32),
)
def test_token_deadlines_never_go_backwards(
    ttft: float, itl: float, jitter: float, count: int, seed: int
) -> None:
    latency = Latency(ttft_ms=ttft, itl_ms=itl, jitter=jitter)
    offsets = token_offsets(latency, 10, count, random.Random(seed))
    assert len(offsets) == count
    assert all(a <= b for a, b in itertools.pairwise(offsets))
    gap = itl / 1000
    first = offsets[0]
    # Each deadline stays within half a gap of its own slot: no drift accumulates.
    assert all(abs(o - (first + i * gap)) <= gap / 2 + 1e-9 for i, o in enumerate(offsets))


# --- faults ---


def test_dice_follow_their_probabilities_and_seed() -> None:
    faults = Faults(server_error=0.2, reset=0.1)
    rolls = [FaultDice(7).roll(faults) for _ in range(1)]
    dice = FaultDice(7)
    many = [dice.roll(faults) for _ in range(10_000)]
    again = FaultDice(7)
    assert [again.roll(faults) for _ in range(10_000)] == many
    assert rolls == many[:1]
    assert 1800 < many.count(Fault.SERVER_ERROR) < 2200
    assert 850 < many.count(Fault.RESET) < 1150
    assert set(many) == {None, Fault.SERVER_ERROR, Fault.RESET}


def test_dice_with_no_faults_draw_nothing() -> None:
    dice = FaultDice(1)
    assert dice.roll(Faults()) is None
    twin = FaultDice(1)
    always = Faults(hang=1.0)
    assert dice.roll(always) is twin.roll(always) is Fault.HANG


# --- config ---


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: ServerLimits(rpm=0), ValueError, "rpm must be at least 1"),
        (lambda: ServerLimits(tpm=1.5), TypeError, "tpm must be an int or None"),
        (lambda: ServerLimits(rpm=True), TypeError, "rpm"),
        (lambda: Latency(ttft_ms=-1), ValueError, "ttft_ms"),
        (lambda: Latency(itl_ms=float("inf")), ValueError, "itl_ms"),
        (
            lambda: Latency(jitter=1.5),
            ValueError,
            "jitter must be a number from 0 to 1",
        ),
        (lambda: Latency(ttft_ms="1"), TypeError, "ttft_ms must be a number"),
        (lambda: Faults(hang=2), ValueError, "hang"),
        (lambda: Faults(reset=0.6, hang=0.6), ValueError, "add up to at most 1"),
        (lambda: Faults(slow_first_byte_ms=-5), ValueError, "slow_first_byte_ms"),
        (lambda: Content(seed=1.0), TypeError, "seed must be an int"),  # type: ignore[arg-type]
        (lambda: Content(seed=1 << 64), ValueError, "64 bits"),
        (lambda: Content(reply_tokens=(5, 4)), ValueError, "reply_tokens"),
        (lambda: Content(reply_tokens=(0, 4)), ValueError, "reply_tokens"),
        (lambda: Content(embedding_dimensions=0), ValueError, "embedding_dimensions"),
        (lambda: Content(models=()), ValueError, "models"),
        (lambda: Content(models=("a", "")), ValueError, "models"),
    ],
)
def test_bad_settings_are_refused_by_name(build: object, error: type, words: str) -> None:
    with pytest.raises(error, match=re.escape(words)):
        build()  # type: ignore[operator]


def test_settings_read_back() -> None:
    faults = Faults(server_error=0.25, stream_cut=0.5)
    assert faults.probability(Fault.STREAM_CUT) == 0.5
    assert faults.probability(Fault.HANG) == 0.0
    assert as_dict(ServerLimits(rpm=5)) == {"rpm": 5, "tpm": None}
    assert "table" not in as_dict(faults)
    assert Latency().is_zero
    assert not Latency(itl_ms=1).is_zero
    assert Content(models=["a"], reply_tokens=[1, 2]).models == ("a",)  # type: ignore[arg-type]
