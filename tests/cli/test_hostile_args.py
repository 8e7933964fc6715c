"""Generated hostile arguments for every ``roft`` command (Hypothesis): each is refused with exit 2, a short
message naming the value, no traceback, and the store it was pointed at byte-for-byte unchanged
(tests/hostile.py, :func:`refused`). A few run as real processes to check stderr end to end."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from orchestrator.cli import build_parser  # noqa: E402
from tests.hostile import NASTY_TEXT, PATHLIKE, make_sandbox, refused, without  # noqa: E402
from trainables.data.tasks import TASKS  # noqa: E402

pytestmark = [pytest.mark.hostile]

STORE_COMMANDS = [["table"], ["reading"], ["report", "--out", "out"], ["store", "list"], ["store", "compact"],
                  ["store", "forget", "0" * 24], ["store", "clean"], ["status"], ["placement"], ["alpha", "--dry-run"]]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = make_sandbox(tmp_path_factory.mktemp("hostile-args"))
        patch.setenv("ROFT_CACHE", str(root / "cache"))
        patch.delenv("ROFT_STORE", raising=False)
        yield root


def _leaves(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) of every runnable sub-command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _leaves(child, (*path, name))


def _typed_options():
    """(command path, option, type or choices) of every option that converts or restricts its value: numbers
    (each with a range), durations, devices, intervals, and options with choices."""
    out = []
    for path, parser in _leaves(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and (action.choices or action.type is not None):
                out.append((path, action.option_strings[0], action.type, tuple(action.choices or ())))
    return out


TYPED = _typed_options()


def _accepts(convert, choices: tuple, value: str) -> bool:
    """Whether argparse takes ``value`` for an option of this type and these choices."""
    try:
        converted = convert(value) if convert is not None else value
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return not choices or converted in choices


@given(st.sampled_from(TYPED), st.data())
def test_a_bad_value_of_a_typed_option_is_refused_by_every_command(sandbox, option, data):
    path, flag, convert, choices = option
    value = data.draw(without(NASTY_TEXT | PATHLIKE,
                              lambda v: _accepts(convert, choices, v) or v.startswith("-") or "\x00" in v))
    refused([*path, flag, value], sandbox, mentions=flag)


def test_every_number_option_has_a_range():
    """No option converts with a bare int or float: each takes a range, so NaN, infinities and values
    beyond any sensible size are refused by argparse (not deep inside a command)."""
    bare = [(path, flag) for path, flag, convert, choices in TYPED if convert in (int, float) and not choices]
    assert not bare, f"options without a range: {bare}"


@pytest.mark.parametrize(
    "argv, flag, value",
    [
        (["status", "--store", "store"], "--stale-after", "nan"),  # NaN compared false with 0: accepted
        (["store", "clean", "--store", "store"], "--older-than", "inf"),  # an age nothing is ever older than
        (["bench", "plan"], "--seeds", "-1"),  # planned an empty grid
        (["pretrain", "--out", "out"], "--device", "bogus"),  # failed inside torch without naming the option
        (["alpha", "--store", "store"], "--cpus", "nan"),
        (["sweep", "spec.yaml"], "--trials-per-gpu-hour", "inf"),
    ],
)
def test_values_once_accepted_are_refused_naming_the_option(sandbox, argv, flag, value):
    err = refused([*argv, flag, value], sandbox, mentions=flag)
    assert f"argument {flag}: {value!r} is not accepted; accepted: " in err


@given(st.sampled_from([path for path, _ in _leaves(build_parser())]), NASTY_TEXT.filter(lambda v: "\x00" not in v))
def test_an_unknown_option_is_refused_by_every_command(sandbox, path, word):
    refused([*path, f"--{word.lstrip('-')}x"], sandbox)


@given(st.sampled_from(STORE_COMMANDS), (PATHLIKE | NASTY_TEXT).filter(lambda v: "\x00" not in v and v.strip()))
@example(["report", "--out", "out"], "/etc/passwd")
@example(["table"], "~0")  # no user named 0: a bare "Could not determine home directory." named no value
def test_a_store_that_is_not_one_is_refused(sandbox, command, location):
    try:
        path = Path(location).expanduser()
        exists = (path if path.is_absolute() else sandbox / path).is_dir()
    except (OSError, RuntimeError):  # a name too long; ~name of no user on this machine
        exists = False
    if exists or location.startswith("-") or "://" in location:
        return  # an existing folder is a store (an empty one); options are not stores
    refused([*command, "--store", location], sandbox)


@given(without(NASTY_TEXT, lambda v: v in TASKS or v.startswith("-") or "\x00" in v))
@example("bbbpp")  # a misspelled task ended in a Python traceback (UnknownNameError)
def test_an_unknown_task_to_featurize_is_refused(sandbox, task):
    refused(["data", "featurize", task], sandbox, mentions="unknown task")


WHERE = (NASTY_TEXT | st.builds("{}={}".format, NASTY_TEXT, NASTY_TEXT)).filter(
    lambda v: "\x00" not in v and not v.startswith("-"))


@given(st.sampled_from([["table"], ["store", "list"], ["report", "--out", "out"]]), WHERE)
@example(["report", "--out", "out"], "bogus=1")  # created the --out folder before refusing the filter
def test_a_bad_filter_is_refused(sandbox, command, where):
    column = where.partition("=")[0]
    if "=" in where and column and where.partition("=")[2] and column in ("task", "method", "backbone", "sweep"):
        return  # a known column with any value is a filter that may match nothing (not an error)
    refused([*command, "--store", "store", "--where", where], sandbox)


@given(st.sampled_from([["table", "--rows"], ["table", "--cols"]]), NASTY_TEXT.filter(lambda v: "\x00" not in v
                                                                                      and not v.startswith("-")))
def test_bad_table_dimensions_are_refused(sandbox, option, value):
    from orchestrator.analysis.tables import CELL

    if set(value.split(",")) <= set(CELL):
        return
    refused([*option, value, "--store", "store"], sandbox)


@given(st.sampled_from([["status", "--stale-after"], ["store", "clean", "--older-than"], ["report", "--out", "out",
                                                                                         "--watch"]]),
       NASTY_TEXT.filter(lambda v: "\x00" not in v and not v.startswith("-")))
def test_bad_durations_are_refused(sandbox, option, value):
    import re

    if re.fullmatch(r"\s*\d+(\.\d+)?\s*[smhd]?\s*", value) or re.fullmatch(r"[0-9.eE+_ ]+", value):
        return
    refused([*option, value, "--store", "store"], sandbox)


@given(st.lists(NASTY_TEXT.filter(lambda v: "\x00" not in v and not v.startswith("-")), min_size=1, max_size=3))
def test_malformed_trial_keys_are_refused(sandbox, keys):
    refused(["store", "forget", *keys, "--store", "store"], sandbox, mentions="malformed trial key")


@pytest.mark.parametrize("argv", [
    ["data", "featurize", "bbbpp"],
    pytest.param(["sweep", "../x", "--dry-run"], marks=pytest.mark.slow),
    pytest.param(["table", "--store", "/etc/passwd"], marks=pytest.mark.slow),
    pytest.param(["report", "--store", "store", "--out", "/dev/null/x"], marks=pytest.mark.slow),
])
def test_no_traceback_reaches_stderr_of_a_real_process(sandbox, argv):
    result = subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=sandbox, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("roft: error: "), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_reading_takes_one_of_its_instead_views(sandbox):
    refused(["reading", "--store", "store", "--claims", "--ranks"], sandbox, mentions="--claims and --ranks")


@pytest.mark.parametrize("argv", [["table", "--store", "~nosuchuser0/store"],
                                  ["sweep", "mini.yaml", "--dry-run", "--data-root", "~nosuchuser0/data"],
                                  ["sweep", "mini.yaml", "--dry-run", "--store", "~nosuchuser0/store"]])
def test_a_home_of_no_user_is_named(sandbox, argv):
    refused(argv, sandbox, mentions="'~nosuchuser0/")
