"""The ``anyfan`` command line and its ``demo``: structure of the output, never timings."""

from __future__ import annotations

import importlib
import importlib.util
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import anyfan
from anyfan import cli
from anyfan.cli import _demo

ROW = re.compile(r"^(?P<label>.+?)\s+(?P<wall>\d+\.\d\d) s\s+(?P<ideal>\d+\.\d\d) s\s+\d+\.\dx$")


def _table_rows(output: str) -> list[str]:
    return [m["label"] for line in output.splitlines() if (m := ROW.match(line))]


def test_quick_demo_prints_one_row_per_way_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--quick", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    labels = _table_rows(out)
    expected = [
        "sequential: one await after another",
        "anyfan.map, concurrency 32, asyncio",
    ]
    if importlib.util.find_spec("uvloop"):
        expected.append("anyfan.map, concurrency 32, asyncio + uvloop")
    if importlib.util.find_spec("trio"):
        expected.append("anyfan.map, concurrency 32, trio")
    expected.append("anyfan.map, concurrency 32, blocking function in threads")
    assert labels == expected
    assert "8 prompts" in out
    assert "(seed 3)" in out
    assert f"All {len(expected)} runs returned the same 8 answers, in input order." in out


def test_concurrency_option_reaches_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--quick", "--concurrency", "2"]) == 0
    labels = _table_rows(capsys.readouterr().out)
    assert all("concurrency 2," in label for label in labels[1:])


def test_missing_trio_is_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_demo, "_installed", lambda module: False)
    assert cli.main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert not any("trio" in label or "uvloop" in label for label in _table_rows(out))
    assert "pip install 'anyfan[trio]'" in out


def test_wrong_answers_fail_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_demo.StandIn, "ask_blocking", lambda self, prompt: "nonsense")
    assert cli.main(["demo", "--quick"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: answers missing or out of order in: " in out
    assert "blocking function in threads" in out.splitlines()[-1]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_counts_are_rejected(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["demo", "--prompts", value])
    assert exc_info.value.code == 2
    assert f"must be at least 1, got {value}" in capsys.readouterr().err


def test_installed_tells_missing_modules() -> None:
    assert _demo._installed("anyfan")
    assert not _demo._installed("anyfan_no_such_module")


def test_ideal_is_list_scheduling_in_input_order() -> None:
    assert _demo.ideal_seconds([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert _demo.ideal_seconds([1.0, 2.0, 3.0], 1) == 6.0
    assert _demo.ideal_seconds([1.0, 2.0], 8) == 2.0
    assert _demo.ideal_seconds([], 4) == 0.0


def test_stand_in_is_reproducible_for_a_seed() -> None:
    prompts = _demo.make_prompts(20)
    assert len(set(prompts)) == 20
    first = _demo.StandIn.seeded(prompts, seed=5)
    assert first == _demo.StandIn.seeded(prompts, seed=5)
    assert first != _demo.StandIn.seeded(prompts, seed=6)
    assert all(0.2 <= delay <= 0.5 for delay in first.latency.values())


def test_help_lists_only_commands_whose_modules_exist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "nope": "anyfan.cli._no_such_module"})
    with pytest.raises(SystemExit) as exc_info:
        cli.main(["--help"])
    assert exc_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out
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


def test_python_dash_m_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # runpy warns when the module it runs as __main__ was imported before.
    monkeypatch.delitem(sys.modules, "anyfan.__main__", raising=False)
    monkeypatch.setattr(sys, "argv", ["anyfan", "demo", "--quick"])
    with pytest.raises(SystemExit) as exc_info:
        runpy.run_module("anyfan", run_name="__main__")
    assert exc_info.value.code == 0
    assert "in input order" in capsys.readouterr().out


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
