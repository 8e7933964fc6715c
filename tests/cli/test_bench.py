"""orchestrator/cli/bench.py: the throughput bench's engine options from its flags and --variant words."""

from __future__ import annotations

import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.bench import engine_variants
from trainables.core.engine import EngineOptions


def _variants(*argv: str) -> list[EngineOptions]:
    return engine_variants(build_parser().parse_args(["bench", "throughput", *argv]))


def test_flags_and_variants_name_the_engine_options():
    assert _variants() == [EngineOptions()]
    assert _variants("--compile", "--bf16", "--csr") == [EngineOptions(compile=True, precision="bf16",
                                                                       aggregation="csr")]
    assert _variants("--tf32", "--variant", "plain", "--variant", "group-dropout,csr") == [
        EngineOptions(tf32=True), EngineOptions(tf32=True, dropout_streams="group", aggregation="csr")]


def test_an_unknown_variant_is_refused_before_any_work(capsys):
    assert main(["bench", "throughput", "--variant", "compile,fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("roft: error: --variant 'compile,fast': unknown option(s) fast; accepted: plain, or a "
                          "comma-separated subset of compile, group-dropout, bf16, csr")
    assert main(["bench", "throughput", "--variant", "tf32"]) == 2  # process-wide: --tf32
    assert "unknown option(s) tf32" in capsys.readouterr().err


def test_bad_orchestrator_sizes_are_refused_before_ray_starts(capsys):
    for flag, value, accepted in (("--trials", "0", "an integer from 1 to 1,000,000"),
                                  ("--no-reuse", "-1", "an integer from 0 to 100,000")):
        with pytest.raises(SystemExit) as exit_:
            main(["bench", "orchestrator", flag, value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err == (f"roft bench orchestrator: error: argument {flag}: {value!r} is not accepted; "
                       f"accepted: {accepted} (roft bench orchestrator --help)\n")
