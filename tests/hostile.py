"""Hostile input for roft's commands: Hypothesis strategies, and the invariant every refused input keeps.

:func:`refused` runs one ``roft`` command in this process (``orchestrator.cli.main``) inside a sandbox
folder (the working directory) holding a small store, and checks the promise made to bad input:
exit status 2, a short message whose last line is ``roft...: error: ...``, no traceback, nothing written
anywhere in the sandbox (the store byte-for-byte unchanged) and no file left in the temporary
folder (the sandbox's ``tmp/`` while the command runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import strategies as st

from orchestrator.cli import main

REPO = Path(__file__).resolve().parent.parent
STORE_FIXTURE = REPO / "tests" / "fixtures" / "store-v0"
MAX_LINES, MAX_CHARS = 40, 8000  # usage text of the largest command included
ERROR_LINE = re.compile(r"^roft( [\w-]+)*: error: \S", re.M)


def make_sandbox(root: Path) -> Path:
    """``root`` with ``store/`` (a copy of the v0 fixture store) and ``cache/``; returns ``root``."""
    shutil.copytree(STORE_FIXTURE, root / "store")
    (root / "cache").mkdir()
    return root


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``, and every folder (as ``dir``), by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        out[key] = "dir" if path.is_dir() and not path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``roft argv`` in-process in ``cwd``, with ``cwd/tmp`` as the temporary folder: (exit status,
    stdout, stderr). An exception escaping ``main`` (a traceback for the user) propagates."""
    out, err = io.StringIO(), io.StringIO()
    before, tmp = Path.cwd(), tempfile.tempdir
    (cwd / "tmp").mkdir(exist_ok=True)
    os.chdir(cwd)
    tempfile.tempdir = str(cwd / "tmp")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse: usage errors (2), --help (0)
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
        tempfile.tempdir = tmp
    return code, out.getvalue(), err.getvalue()


def refused(argv: list[str], sandbox: Path, *, mentions: str | None = None) -> str:
    """Run ``roft argv`` in ``sandbox`` and check the invariant of refused input; returns stderr.
    ``mentions``: a text the error must contain (the offending value, as the user typed it)."""
    (sandbox / "tmp").mkdir(exist_ok=True)
    before = snapshot(sandbox)
    code, out, err = run(argv, sandbox)
    shown = f"roft {' '.join(map(repr, argv))}\nexit {code}\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"
    assert code == 2, shown
    assert "Traceback" not in err and "Traceback" not in out, shown
    assert ERROR_LINE.search(err), shown
    assert len(err.splitlines()) <= MAX_LINES and len(err) <= MAX_CHARS, shown
    if mentions is not None:
        assert mentions in err, f"the error does not name {mentions!r}:\n{shown}"
    assert snapshot(sandbox) == before, f"the command changed the sandbox (store, cache, temp or working folder):\n{shown}"
    return err


# ---- strategies ----------------------------------------------------------------------------------

UP = "/".join([".."] * 2)  # paths that climb out of the working folder (spelled so, not as one literal)
PATHLIKE = st.sampled_from(["../x", f"{UP}/etc/passwd", "/etc/passwd", "/", "..", ".", f"a/{UP}/b", "~", "~root",
                            "/dev/null", "/dev/null/x", "/proc/self/environ", "C:\\x", "\\\\server\\share", "-"])
NASTY_TEXT = st.one_of(
    st.text(min_size=1, max_size=40),  # any unicode, control characters included
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=20),
    st.sampled_from(["<script>alert(1)</script>", r"\input{/etc/passwd}", r"\write18{touch x}", "$(touch x)",
                     "`touch x`", "%s%n", "{0.__class__}", "a|b", "**x**", "\u202eevil", "\x00", "\x1b[31m",
                     "é", "名前", "x" * 300]),
    PATHLIKE,
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), NASTY_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.one_of(NASTY_TEXT, st.integers()), inner, max_size=4), max_leaves=12)


def without(values: st.SearchStrategy, accepted) -> st.SearchStrategy:
    """``values`` minus the accepted ones (``accepted``: a container, or a predicate)."""
    ok = accepted if callable(accepted) else (lambda v: v in accepted)
    return values.filter(lambda v: not _safe(ok, v))


def _safe(predicate, value) -> bool:
    try:
        return bool(predicate(value))
    except Exception:
        return False
