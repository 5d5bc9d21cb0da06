"""An empty input, or a JSON document that is not JSONL, is named as such once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import chat, read_results

from anyfan.batch import NOT_JSONL, input_shape

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.sim import Simulator


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("", "empty"),
        ("\n  \n\n", "empty"),
        ("\ufeff\n", "empty"),
        ('[{"model": "m"}]\n', "array"),
        ('  [\n  {"model": "m"}\n]\n', "array"),
        ('{\n  "model": "m"\n}\n', "pretty"),
        ('{"model": "m"}\n{"model": "n"}\n', None),
        ("not json\n", None),
    ],
)
def test_input_shape(tmp_path: Path, text: str, shape: str | None) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(text, encoding="utf-8")
    assert input_shape(path) == shape


def test_a_long_run_of_blank_lines_is_left_to_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n" * (1 << 16) + json.dumps(chat(0)) + "\n")
    assert input_shape(path) is None


def test_an_empty_file_says_so_and_exits_0(run_cli: Any, sim: Simulator, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("")
    out = tmp_path / "out.jsonl"
    ran = run_cli(source, "-o", out, "--base-url", sim.url)
    assert ran.code == 0
    assert f"{source} is empty: nothing to send" in ran.err
    assert sim.counters().requests == 0
    assert out.read_text() == ""


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        (json.dumps([chat(0), chat(1)], indent=None), "a JSON array"),
        (json.dumps(chat(0), indent=2), "pretty-printed JSON"),
    ],
)
def test_a_json_document_gets_one_hint(
    run_cli: Any, sim: Simulator, tmp_path: Path, document: str, kind: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(document + "\n")
    out = tmp_path / "out.jsonl"
    ran = run_cli(source, "-o", out, "--base-url", sim.url)
    assert ran.code == 1
    assert ran.err.count(NOT_JSONL) == 1
    assert f"looks like {kind}: this is not JSONL: one request object per line" in ran.err
    assert all("error" in record for record in read_results(out))
    assert sim.counters().requests == 0
