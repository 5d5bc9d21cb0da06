"""The ``anyfan`` command line and its ``demo``: structure of the output, never timings."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import anyfan
from anyfan import cli
from anyfan.cli import _demo

ROW = re.compile(r"^(?P<label>.+?)\s+(?P<wall>\d+\.\d\d) s\s+\d+\.\dx$")
HAS_SIM = bool(importlib.util.find_spec("uvicorn") and importlib.util.find_spec("httptools"))
needs_sim = pytest.mark.skipif(not HAS_SIM, reason="needs the sim extra")


def _table_rows(output: str) -> list[str]:
    return [m["label"] for line in output.splitlines() if (m := ROW.match(line))]


def _expected_labels(concurrency: int) -> list[str]:
    labels = [
        "sequential: one blocking call after another",
        f"anyfan.map on asyncio (built-in HTTP client), concurrency {concurrency}",
    ]
    if importlib.util.find_spec("trio"):
        labels.append(f"anyfan.map on trio (built-in HTTP client), concurrency {concurrency}")
    labels.append(f"anyfan.blocking.map, blocking calls in threads, concurrency {concurrency}")
    labels.append(f"anyfan run's path (the batch CLI), concurrency {concurrency}")
    return labels


@needs_sim
def test_quick_demo_replays_the_story_on_the_simulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo", "--quick", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    labels = _table_rows(out)
    assert labels == _expected_labels(32)
    assert "8 chat prompts to an OpenAI-compatible simulator at\nhttp://127.0.0.1:" in out
    assert "(seed 3)" in out
    assert f"All {len(labels)} ways returned the same 8 replies, in input order." in out
    burst = re.search(r"no limit \(asyncio.gather style\): (\d+) x 429, (\d+) answered", out)
    assert burst is not None
    assert int(burst[1]) + int(burst[2]) == _demo.QUICK.burst
    assert f"anyfan run --rpm {_demo.QUICK.rpm}: 0 x 429, {_demo.QUICK.burst} answered" in out


def _no_rate_limit_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "rate_limit_story", lambda *args: True)


@needs_sim
def test_concurrency_option_reaches_the_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_rate_limit_part(monkeypatch)
    assert cli.main(["demo", "--quick", "--concurrency", "2"]) == 0
    labels = _table_rows(capsys.readouterr().out)
    assert labels == _expected_labels(2)


@needs_sim
def test_missing_trio_is_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_rate_limit_part(monkeypatch)
    real = _demo._installed
    monkeypatch.setattr(_demo, "_installed", lambda module: module != "trio" and real(module))
    assert cli.main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert not [label for label in _table_rows(out) if "trio" in label]
    assert "trio is not installed: pip install 'anyfan[trio]'" in out


def test_missing_simulator_is_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_demo, "_installed", lambda module: module != "uvicorn")
    assert cli.main(["demo", "--quick"]) == 2
    assert "pip install 'anyfan[sim]'" in capsys.readouterr().out


@needs_sim
def test_wrong_answers_fail_the_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_rate_limit_part(monkeypatch)
    monkeypatch.setattr(_demo, "_blocking", lambda url, prompts, n: ["nonsense"] * len(prompts))
    assert cli.main(["demo", "--quick"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: replies missing or out of order in: " in out
    assert "blocking calls in threads" in out.splitlines()[-1]


@needs_sim
def test_a_429_in_the_paced_run_fails_the_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _demo.batch_path

    def one_refusal(*args: Any, **kwargs: Any) -> tuple[list[str], int]:
        answers, _ = real(*args, **kwargs)
        return answers, 1 if kwargs.get("rpm") else 0

    monkeypatch.setattr(_demo, "batch_path", one_refusal)
    assert cli.main(["demo", "--quick"]) == 1
    out = capsys.readouterr().out
    assert f"anyfan run --rpm {_demo.QUICK.rpm}: 1 x 429" in out
    assert out.splitlines()[-1] == "FAILED: the paced run drew a 429 or lost a request"


@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_counts_are_rejected(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["demo", "--prompts", value])
    assert exc_info.value.code == 2
    assert f"must be at least 1, got {value}" in capsys.readouterr().err


def test_prompts_and_replies() -> None:
    prompts = _demo.make_prompts(20)
    assert len(set(prompts)) == 20
    assert prompts[0] == "#1: Tell me a joke about cats."
    body = {"choices": [{"message": {"content": " hi "}}]}
    assert _demo.reply_of(body) == "hi"
    assert _demo.reply_of(b'{"choices": [{"message": {"content": "yo"}}]}') == "yo"
    assert _demo.request_body("x")["messages"] == [{"role": "user", "content": "x"}]


def test_help_lists_only_commands_whose_modules_exist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "nope": "anyfan.cli._no_such_module"})
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["--help"])
    assert exc_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out
    assert "run" in out
    assert "nope" not in out
    assert set(cli.available_commands()) <= set(cli.COMMANDS) - {"nope"}


def test_help_does_not_import_subcommands() -> None:
    code = (
        "import sys\n"
        "from anyfan import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert not [m for m in sys.modules if m.startswith('anyfan.cli._')], sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"anyfan {anyfan.__version__}"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main([])
    assert exc_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_main_module_exposes_the_console_script_entry_point() -> None:
    module = importlib.import_module("anyfan.__main__")
    assert module.main is cli.main


def test_python_dash_m_runs_the_cli() -> None:
    # A child process: pytest's assertion rewriter claims anyfan's modules (the package
    # ships a pytest plugin), and runpy cannot run a module through that loader.
    done = subprocess.run(
        [sys.executable, "-m", "anyfan", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"anyfan {anyfan.__version__}"


def test_readme_has_two_set_up_commands_and_ci_runs_the_second_verbatim() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    set_up = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", set_up, re.DOTALL)
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.endswith("python3 -m anyfan demo")
    ci_lines = (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci_lines[-1] == tests
