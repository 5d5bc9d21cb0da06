"""First-class support for OpenAI and OpenAI-compatible APIs.

`fan` builds a correctly configured `anyfan.Fan` in one line (`blocking_fan`
its twin for sync code and notebooks), holding the client to call through as
``fan.client``; the helpers below it are the pieces it is made of,
for those who build their own. The openai package is not needed to import
this module: exceptions and responses are recognised by shape.
"""

from ._classify import (
    LOOP_NOTE,
    Verdict,
    classify_exception,
    classify_response,
    delay_hint,
    explain_loop_error,
    is_retryable,
    rejected_without_work,
)
from ._cost import (
    DEFAULT_MAX_TOKENS,
    estimate_tokens,
    max_output_tokens,
    prompt_tokens,
    settled_tokens,
)
from ._fan import (
    DEFAULT_ATTEMPTS,
    DEFAULT_TIMEOUT,
    OpenAIBlockingFan,
    OpenAIFan,
    blocking_fan,
    fan,
    follow_headers,
    observe_rate_limits,
    openai_retry,
    quota_key,
    request_limits,
    watch_sends,
)
from ._headers import RateLimitHeaders, parse_go_duration, retry_after

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TIMEOUT",
    "LOOP_NOTE",
    "OpenAIBlockingFan",
    "OpenAIFan",
    "RateLimitHeaders",
    "Verdict",
    "blocking_fan",
    "classify_exception",
    "classify_response",
    "delay_hint",
    "estimate_tokens",
    "explain_loop_error",
    "fan",
    "follow_headers",
    "is_retryable",
    "max_output_tokens",
    "observe_rate_limits",
    "openai_retry",
    "parse_go_duration",
    "prompt_tokens",
    "quota_key",
    "rejected_without_work",
    "request_limits",
    "retry_after",
    "settled_tokens",
    "watch_sends",
]
