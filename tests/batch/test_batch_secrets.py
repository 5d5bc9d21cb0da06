"""Secrets never reach what a batch job writes: the state file, result lines, messages."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_batch_job import batch, write_input

from anyfan.batch import BatchJob, JobMismatch, state_path
from anyfan.batch._fingerprint import redact_options, redact_url
from anyfan.batch._records import Scrubber, encode_error, encode_response, read_head

if TYPE_CHECKING:
    from pathlib import Path

KEY = "sk-test-DO-NOT-LEAK-8c1f2e7a9b"
URL = "http://alice:pa%24%24-word-77@127.0.0.1:1/v1"
PASSWORD = "pa$$-word-77"


def test_a_url_password_is_redacted_and_the_rest_kept() -> None:
    redacted = "http://alice:[redacted]@127.0.0.1:1/v1"
    assert redact_url(URL) == (redacted, "pa%24%24-word-77", "alice")
    assert redact_url("http://127.0.0.1:1/v1") == ("http://127.0.0.1:1/v1", None, None)
    assert redact_url("http://[::1") == ("http://[::1", None, None)  # not a URL: left as it is
    red = redact_options({"base_url": URL, "max_attempts": 3}, b"k" * 32)
    assert red.options == {"base_url": "http://alice:[redacted]@127.0.0.1:1/v1", "max_attempts": 3}
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert set(red.secrets) == {"pa%24%24-word-77", PASSWORD, basic}
    assert PASSWORD not in json.dumps(red.hashes)


def test_the_state_file_holds_no_password_and_a_change_is_still_seen(tmp_path: Path) -> None:
    src, out = write_input(tmp_path / "in.jsonl", [batch("a", n=1)]), tmp_path / "out.jsonl"
    with BatchJob.open(src, out, {"base_url": URL}) as job:
        job.record(next(job.pending()), 500, {"error": {"message": "x"}})
    state = state_path(out).read_text()
    assert PASSWORD not in state
    assert "pa%24%24" not in state
    assert "alice:[redacted]@127.0.0.1:1" in state
    BatchJob.open(src, out, {"base_url": URL}).close()  # same password: no change
    other = URL.replace("word-77", "word-78")
    with pytest.raises(JobMismatch) as caught:
        BatchJob.open(src, out, {"base_url": other})
    message = str(caught.value)
    assert "password in it changed" in message
    assert "word-77" not in message
    assert "word-78" not in message
    with pytest.raises(JobMismatch, match="password in it changed"):
        BatchJob.open(src, out, {"base_url": "http://alice@127.0.0.1:1/v1"})


def test_a_secret_echoed_by_the_server_is_scrubbed_from_the_results(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", [batch("a", n=1), batch("b", n=2), batch("c", n=3)])
    out = tmp_path / "out.jsonl"
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with BatchJob.open(src, out, {"base_url": URL}, secrets=[KEY]) as job:
        a, b, c = job.pending()
        raw = json.dumps({"error": {"message": f"bad key Bearer {KEY}", "code": "x"}}).encode()
        job.record(a, 400, None, raw=raw)
        job.record(b, 400, {"error": {"message": f"Basic {basic} / {PASSWORD}"}})
        job.record_error(c, {"code": "client_error", "message": f"{KEY}\n{PASSWORD}"})
        assert KEY not in job.scrub(f"key {KEY}")
        text = job.summary().format()
    data = out.read_bytes()
    for secret in (KEY, PASSWORD, basic):
        assert secret.encode() not in data
        assert secret not in text
    assert data.count(b"[redacted]") == 5
    for n, line in enumerate(data.splitlines(keepends=True), 1):
        assert read_head(line, "here").line == n  # still whole, readable records


def strings(value: object) -> list[str]:
    """Every string in a JSON value, keys included (a secret can only hide in one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    return []


# A secret inside the replacement itself cannot be told from it: no real key or password is.
@given(
    st.text(min_size=1, max_size=12).filter(lambda s: s not in "[redacted]"), st.text(max_size=30)
)
def test_scrubbed_lines_stay_valid_json_without_the_secret(secret: str, noise: str) -> None:
    scrub = Scrubber([secret])
    body = {"error": {"message": noise + secret + noise, secret: [secret]}}
    data, _ = encode_response(3, "id", 400, body, 1, 0.5)
    clean = json.loads(scrub.line(data))
    assert clean["line"] == 3
    assert clean["custom_id"] == "id"
    assert not any(secret in text for text in strings(clean["response"]))
    error = encode_error(4, None, {"message": secret}, 2, 0.1)
    assert list(json.loads(scrub.line(error))["error"].values()) == ["[redacted]"]


def test_a_scrubber_without_secrets_passes_lines_through() -> None:
    scrub = Scrubber(["", ""])
    assert not scrub
    data = encode_error(1, "x", {"message": "m"}, 1, 0.1)
    assert scrub.line(data) is data
    assert Scrubber(["zz"]).line(b"not json zz\n") == b"not json [redacted]\n"
    assert Scrubber(["zz"]).line(b'[1, "zz"]\n') == b'[1, "[redacted]"]\n'


def test_the_hash_key_is_kept_across_runs_and_replaced_when_unusable(tmp_path: Path) -> None:
    from anyfan.batch._state import read_state, state_key, write_state

    path = tmp_path / "s.json"
    assert len(state_key(path)) == 32  # none yet: a fresh one
    assert state_key(path) != state_key(path)
    write_state(path, {}, {}, key=b"k" * 32)
    assert state_key(path) == b"k" * 32
    for bad in ("zz", "ab"):  # not hex; the wrong length
        state = read_state(path)
        assert state is not None
        path.write_text(json.dumps({**state, "key": bad}))
        assert state_key(path) not in (b"k" * 32, b"")
    path.write_text("not a state file")
    assert len(state_key(path)) == 32
    write_state(path, {}, {})  # no key, no secrets: neither is stored
    assert "key" not in path.read_text()


def test_a_password_in_an_older_state_file_is_never_printed(tmp_path: Path) -> None:
    src, out = write_input(tmp_path / "in.jsonl", [batch("a", n=1)]), tmp_path / "out.jsonl"
    with BatchJob.open(src, out, {"base_url": URL}) as job:
        job.record(next(job.pending()), 500, {"error": {"message": "x"}})
    path = state_path(out)
    state = json.loads(path.read_text())
    state["options"]["base_url"] = URL  # as an earlier version stored it
    del state["secrets"]
    path.write_text(json.dumps(state))
    with pytest.raises(JobMismatch) as caught:
        BatchJob.open(src, out, {"base_url": URL})
    assert "pa%24%24" not in str(caught.value)
    assert "option base_url was " in str(caught.value)
