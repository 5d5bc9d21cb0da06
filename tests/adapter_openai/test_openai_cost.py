"""Token estimates of requests (what a TPM quota charges) and what responses report."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import given

import anyfan.openai as ao
from anyfan.openai import estimate_tokens, prompt_tokens
from anyfan.openai._cost import (
    _tokenizer,
    charged_tokens,
    count_text,
    max_output_tokens,
    usage_of,
    warm_up,
)
from anyfan.sim._requests import parse_chat, parse_completions, parse_embeddings
from strategies import (
    openai_chat_requests,
    openai_completion_requests,
    openai_embedding_requests,
)


def _user(text: object) -> dict[str, object]:
    return {"role": "user", "content": text}


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with the heuristic, whether tiktoken is installed or not."""
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # makes `import tiktoken` fail
    _tokenizer.cache_clear()
    yield
    _tokenizer.cache_clear()


# -- chat ---------------------------------------------------------------------------


def test_chat_prompt_is_four_per_message_plus_text_plus_three() -> None:
    request = {"messages": [_user("12345678"), {"role": "system", "content": "123"}]}
    assert prompt_tokens(request) == 3 + (4 + 2) + (4 + 1)


def test_chat_content_parts_count_their_text_only() -> None:
    parts = [
        {"type": "text", "text": "abcd"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        "efgh",
        {"type": "text", "text": 12},
        SimpleNamespace(type="text", text="ijkl"),
    ]
    assert prompt_tokens({"messages": [_user(parts)]}) == 3 + 4 + 3


def test_chat_messages_as_sdk_objects() -> None:
    # A reply appended to the conversation as it came back: an object, not a dict.
    reply = SimpleNamespace(role="assistant", content="abcdefgh", tool_calls=None)
    tool_call = SimpleNamespace(role="assistant", content=None)
    request = {"messages": (_user("abcd"), reply, tool_call)}
    assert prompt_tokens(request) == 3 + (4 + 1) + (4 + 2) + 4


def test_chat_output_budget() -> None:
    messages = [_user("abcd")]
    assert max_output_tokens({"messages": messages}) == 256
    assert max_output_tokens({"messages": messages}, default=100) == 100
    assert max_output_tokens({"messages": messages, "max_tokens": 50}) == 50
    both = {"messages": messages, "max_tokens": 50, "max_completion_tokens": 70}
    assert max_output_tokens(both) == 70
    assert max_output_tokens({"messages": messages, "max_tokens": 50, "n": 3}) == 150
    assert max_output_tokens({"messages": messages, "max_tokens": None}) == 256


@pytest.mark.parametrize("bad", [True, -1, 2.5, "50"])
def test_chat_output_budget_ignores_nonsense(bad: object) -> None:
    assert max_output_tokens({"messages": [], "max_tokens": bad}) == 256
    assert max_output_tokens({"messages": [], "max_tokens": 10, "n": bad}) == 10


def test_chat_estimate() -> None:
    request = {"model": "gpt-4o-mini", "messages": [_user("abcdefgh")], "max_tokens": 20}
    assert estimate_tokens(request) == 3 + 4 + 2 + 20
    assert estimate_tokens({"messages": [_user("abcd")]}, default_max_tokens=10) == 8 + 10


# -- completions, embeddings, responses -------------------------------------------------


def test_completions() -> None:
    assert prompt_tokens({"prompt": "abcdefghi"}) == 3
    assert max_output_tokens({"prompt": "abc"}) == 16  # the API's own default
    assert max_output_tokens({"prompt": "abc", "max_tokens": 40, "n": 2}) == 80
    assert estimate_tokens({"prompt": "abcd", "max_tokens": 5}) == 6


def test_completions_with_several_prompts() -> None:
    request = {"prompt": ["abcd", "abcdefgh", ""], "max_tokens": 10}
    assert prompt_tokens(request) == 1 + 2 + 0
    assert max_output_tokens(request) == 3 * 10  # each prompt gets its own completion


def test_completions_pre_tokenized() -> None:
    assert prompt_tokens({"prompt": [1, 2, 3, 4, 5]}) == 5
    assert max_output_tokens({"prompt": [1, 2, 3], "max_tokens": 4}) == 4
    assert prompt_tokens({"prompt": [[1, 2], [3, 4, 5]]}) == 5
    assert max_output_tokens({"prompt": [[1, 2], (3,)], "max_tokens": 4}) == 8


def test_embeddings_generate_nothing() -> None:
    request = {"model": "text-embedding-3-small", "input": ["abcd", "abcdefgh"]}
    assert prompt_tokens(request) == 3
    assert max_output_tokens(request) == 0
    assert estimate_tokens(request) == 3


def test_responses_api() -> None:
    request = {
        "model": "gpt-4o-mini",
        "instructions": "abcdefgh",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "abcd"}]},
            {"role": "user", "content": "abcdefghijkl"},
        ],
        "max_output_tokens": 100,
    }
    assert prompt_tokens(request) == 2 + 1 + 3
    assert max_output_tokens(request) == 100


def test_nothing_to_count() -> None:
    assert prompt_tokens({}) == 0
    assert prompt_tokens({"input": None}) == 0
    assert prompt_tokens({"instructions": 5, "input": 5}) == 0
    assert max_output_tokens({}) == 256


# -- the same rules as the simulator ---------------------------------------------------


@given(openai_chat_requests)
def test_chat_estimate_is_what_the_simulator_charges(request: dict[str, Any]) -> None:
    assert estimate_tokens(request) == parse_chat(request).charge


@given(openai_completion_requests)
def test_completions_estimate_is_what_the_simulator_charges(request: dict[str, Any]) -> None:
    assert estimate_tokens(request) == parse_completions(request).charge


@given(openai_embedding_requests)
def test_embeddings_estimate_is_what_the_simulator_charges(request: dict[str, Any]) -> None:
    assert estimate_tokens(request) == parse_embeddings(request).charge


# -- tiktoken ---------------------------------------------------------------------------


def _fake_tiktoken(monkeypatch: pytest.MonkeyPatch, tokens_per_char: float) -> list[str]:
    loaded: list[str] = []

    class Encoding:
        def encode(self, text: str, disallowed_special: Any = "all") -> list[int]:
            assert disallowed_special == ()  # "<|endoftext|>" in a prompt is just text
            return [0] * round(len(text) * tokens_per_char)

    def get_encoding(name: str) -> Encoding:
        loaded.append(name)
        return Encoding()

    module = ModuleType("tiktoken")
    module.get_encoding = get_encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", module)
    _tokenizer.cache_clear()
    return loaded


def test_tiktoken_counts_when_it_counts_more(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _fake_tiktoken(monkeypatch, tokens_per_char=1.0)  # a dense script, say
    assert warm_up()
    assert count_text("日本語のテキスト") == 8
    assert prompt_tokens({"messages": [_user("abcdefgh")]}) == 3 + 4 + 8
    assert loaded == ["cl100k_base"]  # loaded once, then cached


def test_the_character_estimate_stands_when_tiktoken_counts_less(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_tiktoken(monkeypatch, tokens_per_char=0.1)
    assert count_text("a" * 40) == 10  # tiktoken says 4; the quota sees 10


def test_tiktoken_without_its_encoding_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_encoding(name: str) -> None:
        raise OSError("offline, and no cached encoding")

    module = ModuleType("tiktoken")
    module.get_encoding = get_encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", module)
    _tokenizer.cache_clear()
    assert not warm_up()
    assert count_text("a" * 40) == 10


def test_without_tiktoken() -> None:
    assert not warm_up()
    assert count_text("") == 0
    assert count_text("abcde") == 2


# -- usage --------------------------------------------------------------------------------


def test_usage_of_a_dict_response() -> None:
    result = {"usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "x": None}}
    assert usage_of(result) == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def test_usage_of_an_sdk_response() -> None:
    usage = SimpleNamespace(prompt_tokens=10, completion_tokens=5, total_tokens=15, details=None)
    assert usage_of(SimpleNamespace(usage=usage)) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    responses_usage = SimpleNamespace(input_tokens=7, output_tokens=3, total_tokens=10)
    assert usage_of(SimpleNamespace(usage=responses_usage)) == {
        "input_tokens": 7,
        "output_tokens": 3,
        "total_tokens": 10,
    }


def test_usage_of_a_real_sdk_object() -> None:
    openai = pytest.importorskip("openai")
    completion = openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        }
    )
    assert usage_of(completion) == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


def test_no_usage() -> None:
    assert usage_of({"choices": []}) is None
    assert usage_of("some text") is None
    assert usage_of(None) is None


def test_charged_tokens_are_reported_prompt_plus_budget() -> None:
    request = {"messages": [_user("abcd")], "max_tokens": 20}
    assert charged_tokens(request, {"usage": {"prompt_tokens": 12, "total_tokens": 15}}) == 32
    responses = {"input": "abcd", "max_output_tokens": 30}
    assert charged_tokens(responses, {"usage": {"input_tokens": 5}}) == 35
    assert charged_tokens(request, {"usage": {"total_tokens": 15}}) is None
    assert charged_tokens(request, {}) is None


class _StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize(
    ("error", "rejected"),
    [
        (_StatusError(400), True),
        (_StatusError(404), True),
        (_StatusError(413), True),
        (_StatusError(429), False),
        (_StatusError(500), False),
        (TimeoutError(), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_a_call_rejected_without_work_costs_nothing(error: BaseException, rejected: bool) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 10}
    assert ao.rejected_without_work(error) is rejected
    expected = 0 if rejected else ao.estimate_tokens(request)
    assert ao.settled_tokens(request, error) == expected


def test_settled_tokens_of_a_response_follow_the_charge() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 10}
    reply = {"usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}
    assert ao.settled_tokens(request, reply) == 12 + 10
    assert ao.settled_tokens(request, reply, charge="usage") == 14
    assert ao.settled_tokens(request, {}, charge="usage") == ao.estimate_tokens(request)
    assert ao.settled_tokens(request, {}) == ao.estimate_tokens(request)


class _Response:
    """A response or error carrying only the status, under the name a client gives it."""

    def __init__(self, **status: int) -> None:
        self.__dict__.update(status)


class _WithResponse(Exception):
    """httpx's ``HTTPStatusError`` shape: the status is on its response."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.response = _Response(status_code=status_code)


class _AiohttpError(Exception):
    """aiohttp's ``ClientResponseError`` shape: the status is ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@pytest.mark.parametrize(
    ("outcome", "rejected"),
    [
        (_Response(status_code=400), True),
        (_Response(status=422), True),
        (_Response(status_code=429), False),
        (_Response(status_code=200), False),
        (_WithResponse(404), True),
        (_WithResponse(503), False),
        (_AiohttpError(400), True),
        (_AiohttpError(429), False),
        ({"status_code": 400}, False),
        ("400", False),
    ],
)
def test_one_rule_for_rejected_calls_whatever_their_shape(outcome: object, rejected: bool) -> None:
    # The rule request_limits (and so the batch job) and settled_tokens settle by.
    request = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 10}
    assert ao.rejected_without_work(outcome) is rejected
    _, tokens = ao.request_limits(tpm=60_000)
    assert tokens is not None
    estimate = ao.estimate_tokens(request)
    assert tokens.actual_of(request, outcome) == (0 if rejected else estimate)
    assert ao.settled_tokens(request, outcome) == (0 if rejected else estimate)


def test_a_custom_usage_reader_settles_at_its_prompt_plus_budget() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "max_tokens": 10}
    _, tokens = ao.request_limits(tpm=60_000, usage=lambda result: result.get("counts"))
    assert tokens is not None
    assert tokens.actual_of(request, {"counts": {"prompt_tokens": 7}}) == 17
    assert tokens.actual_of(request, {"counts": {"input_tokens": 5}}) == 15
    estimate = ao.estimate_tokens(request)
    assert tokens.actual_of(request, {"counts": {}}) == estimate
    assert tokens.actual_of(request, {"counts": None}) == estimate
    assert tokens.actual_of(request, {"counts": None, "status_code": 0}) == estimate


def test_usage_is_read_from_mappings_and_objects_of_many_kinds() -> None:
    from collections.abc import Mapping

    from anyfan.openai import _cost

    class Counts(Mapping[str, int]):
        def __init__(self, **counts: int) -> None:
            self._counts = counts

        def __getitem__(self, key: str) -> int:
            return self._counts[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._counts)

        def __len__(self) -> int:
            return len(self._counts)

    assert _cost._field(Counts(prompt_tokens=3), "prompt_tokens") == 3
    assert _cost._field(SimpleNamespace(prompt_tokens=4), "prompt_tokens") == 4
    # Classes made on the fly are read as well as any, and never all kept.
    kinds = [type(f"Reply{i}", (), {"usage": i}) for i in range(2 * _cost._KINDS_KEPT)]
    assert [_cost._field(kind(), "usage") for kind in kinds] == list(range(len(kinds)))
    assert len(_cost._IS_MAPPING) <= _cost._KINDS_KEPT
