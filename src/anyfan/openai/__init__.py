"""First-class support for OpenAI and OpenAI-compatible APIs.

`fan` builds a correctly configured `anyfan.Fan` in one line (`blocking_fan`
its twin for sync code); the helpers below it are the pieces it is made of,
for those who build their own. The openai package is not needed to import
this module: exceptions and responses are recognised by shape.
"""

from ._classify import Verdict, classify_exception, classify_response, delay_hint, is_retryable
from ._cost import DEFAULT_MAX_TOKENS, estimate_tokens, max_output_tokens, prompt_tokens
from ._fan import (
    DEFAULT_ATTEMPTS,
    blocking_fan,
    fan,
    follow_headers,
    observe_rate_limits,
    openai_retry,
    request_limits,
)
from ._headers import RateLimitHeaders, parse_go_duration, retry_after

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_MAX_TOKENS",
    "RateLimitHeaders",
    "Verdict",
    "blocking_fan",
    "classify_exception",
    "classify_response",
    "delay_hint",
    "estimate_tokens",
    "fan",
    "follow_headers",
    "is_retryable",
    "max_output_tokens",
    "observe_rate_limits",
    "openai_retry",
    "parse_go_duration",
    "prompt_tokens",
    "request_limits",
    "retry_after",
]
