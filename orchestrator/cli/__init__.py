"""The ``roft`` command line: a thin layer over the library.

    roft data list|verify|featurize     the benchmark's files and featurized caches
    roft backbones list                 pre-trained and scratch backbones, with the state of their checkpoints
    roft methods list                   fine-tuning methods, their hyper-parameters, defaults and paper grids
    roft sweep SPEC [--dry-run]         plan, dedup against the store, run on Ray Tune, print the table
    roft submit SPEC --address URL      the same sweep as a Ray job on a cluster (code, data root, store, credentials)
    roft pretrain --out DIR             pre-training (attr-mask, contrastive, descriptors; GIN..GPS), resumable
    roft table --store DIR              paper tables (selection protocol, formats, best marked)
    roft report --store DIR --out DIR   one HTML page: tables, significance, figures, provenance
    roft store compact --store DIR      merge per-trial files (refuses while a sweep holds the store)
    roft store list --store DIR [--where C=V]  one line per trial (key, cell, seed, metrics); --keys: keys only
    roft store forget KEY... --store DIR  remove trials (rows, epochs, checkpoint), so a sweep runs them again
    roft store clean --store DIR        remove temporaries of interrupted writes and Tune state of killed sweeps
    roft status --store DIR             per sweep: done/failed/running/queued, last rows, failure causes (no Ray)
    roft bench orchestrator             Ray Tune per-trial overhead with a no-op trial
    roft bench methods                  trials per hour of every method, alone and fused
    roft bench alpha                    cost of an Optuna alpha search relative to Full FT
    roft bench throughput               trials per hour: reference loop vs roft unfused vs roft fused
    roft bench plan [--spec S]          planning a large grid and diffing it against a full store
    roft alpha                          Optuna searches of WiSE-FT / RoFt-Mol alphas over stored FT checkpoints
    roft page refresh|check FILE...     Markdown pages quoting roft's output: rewrite the quotes, or check them
    roft --version                      the installed version and the code's commit

Each sub-command's parser sits beside its handler in one module per command group (``data``,
``sweep``, ``submit``, ``pretrain``, ``results``, ``store``, ``status``, ``bench``, ``page``); each module's ``register(subparsers)``
adds its parsers with ``set_defaults(handler=...)``, and :func:`main` calls the handler.
"""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator.cli import bench, data, page, pretrain, results, status, store, submit, sweep
from orchestrator.cli.common import missing_module_message
from trainables.core.registry import UnknownNameError

COMMAND_GROUPS = (data, sweep, submit, pretrain, results, store, status, bench, page)
# one line `roft: error: ...`, exit 2 (an unknown task, backbone or method name included)
ERRORS = (ValueError, FileNotFoundError, FileExistsError, RuntimeError, UnknownNameError)
SIGPIPE_EXIT = 128 + 13  # as a shell reports a process killed by SIGPIPE


class _OneLineErrors(argparse.ArgumentParser):
    """A parser whose usage errors are one line, ``roft status: error: argument --last: '-1' is not
    accepted; accepted: an integer from 0 to 1,000,000 (roft status --help)``, exit 2; its sub-command
    parsers are of the same class (argparse makes them so)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help)\n")


def version_line() -> str:
    """``roft <installed version>``, then the code's version (commit, dirty) where known."""
    from importlib.metadata import PackageNotFoundError, version

    from orchestrator.version import code_version

    try:
        installed = version("roft")
    except PackageNotFoundError:
        installed = "(not installed)"
    code = code_version()
    return f"roft {installed}" + ("" if "unknown" in code or code == installed else f" (code {code})")


class _Version(argparse.Action):
    """``--version``: computed when asked for (it runs git), then exit 0."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="roft", description="Robust fine-tuning benchmark sweeps for molecular GNNs.")
    parser.add_argument("--version", action=_Version, help="print roft's version (and the code's commit) and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``roft`` command; returns its exit status."""
    try:
        return _run(argv)
    except ModuleNotFoundError as exc:  # building the parser or running a command
        if (exc.name or "").split(".")[0] in ("orchestrator", "trainables", "search_spaces"):
            raise  # roft's own module: a bug, not this Python's environment
        print(f"roft: error: {missing_module_message(exc.name)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (`roft table | head`). As the Python docs recommend
        # (signal module, "Note on SIGPIPE"): send the rest of stdout to devnull, so that the
        # interpreter's final flush does not fail too, and exit quietly.
        _stdout_to_devnull()
        return SIGPIPE_EXIT


def _run(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # --help, --version, usage errors: flush here, where a closed pipe is handled
        sys.stdout.flush()
        raise
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        resume = getattr(args, "on_interrupt", "")  # what a command that writes as it goes has kept
        print(f"interrupted{'; ' + resume if resume else ''}", file=sys.stderr)
        return 130
    except ERRORS as exc:
        print(f"roft: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader of stdout went away: main exits quietly
    except OSError as exc:  # a path the command cannot create or write (--out below a file, no permission, ...)
        print(f"roft: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    return code


def os_error_line(exc: OSError) -> str:
    """``exc`` in one line: the path(s) it concerns and the system's reason."""
    paths = " -> ".join(repr(str(p)) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths}: {reason}" if paths else reason


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (e.g. captured by a test)
        pass


if __name__ == "__main__":
    sys.exit(main())
