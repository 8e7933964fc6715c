"""orchestrator/cli/__init__.py: --version, help on every option, quiet exits on a closed pipe."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version

import pytest

from orchestrator.analysis.tables import CELL
from orchestrator.bench.stores import write_synthetic_store
from orchestrator.cli import build_parser, main
from orchestrator.store.results import ResultStore


def test_version_prints_the_installed_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"roft {version('roft')}") and len(out.splitlines()) == 1


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, action) of every argument of every parser, and of every sub-command's entry."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            yield from ((path + (entry.dest,), entry) for entry in action._choices_actions)
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        else:
            yield path, action


def test_every_option_of_every_command_has_help():
    options = list(_options(build_parser()))
    assert len(options) > 100  # the walk reached the sub-commands' options
    missing = [f"roft {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
               for path, action in options if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


def test_table_rows_and_cols_help_lists_the_dimensions():
    table = next(action for path, action in _options(build_parser()) if path == ("table",) and action.dest == "rows")
    assert all(dimension in table.help for dimension in CELL)


@pytest.fixture(scope="module")
def large_store(tmp_path_factory):
    """A store whose listings are far larger than a pipe's buffer (64 KiB)."""
    store = ResultStore(tmp_path_factory.mktemp("large") / "store")
    assert write_synthetic_store(store, 9000) > 5000
    return store


@pytest.mark.parametrize("command", [["store", "list", "--keys"], ["table", "--all-points"],
                                     ["store", "list"]])
def test_a_closed_pipe_exits_quietly(large_store, command):
    line = subprocess.list2cmdline([sys.executable, "-m", "orchestrator", *command, "--store", large_store.location])
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {line} | head -1"], capture_output=True, text=True,
                            timeout=300)
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert result.returncode in (0, 141)


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["bench", "throughput"], "interrupted\n"),
        (["sweep", "mini.yaml"], "interrupted; finished trials are in the store, rerun the same command to resume\n"),
        (["alpha"], "interrupted; finished trials are in the store, rerun the same command to resume\n"),
    ],
)
def test_ctrl_c_says_what_was_kept_only_for_commands_that_keep_something(command, said, monkeypatch, capsys):
    """A benchmark interrupted keeps nothing, so it does not send the user to a store to resume from."""
    parser = build_parser()

    def interrupted(args):
        raise KeyboardInterrupt

    real = parser.parse_args

    def parse(argv):
        args = real(argv)
        args.handler = interrupted
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr("orchestrator.cli.build_parser", lambda: parser)
    assert main(command) == 130
    assert capsys.readouterr().err == said
