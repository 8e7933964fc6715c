"""``roft page refresh|check FILE...``: Markdown pages that quote roft's output stay true to their stores.

A page quotes a command's output between two comments, the command written in the first::

    <!-- output of: roft table --store docs/results/store-fewshot-methods --cols task -->
    ...the output, as the command prints it...
    <!-- end of output -->

``refresh`` runs every quoted command (from the current folder, in this process) and writes its output
between the comments; ``check`` runs them and exits 1 naming each quote that differs, writing nothing.
Only ``roft`` commands are run (never a shell), and never ``roft page`` itself.
"""

from __future__ import annotations

import io
import re
import shlex
from contextlib import redirect_stdout
from pathlib import Path

from trainables.data.sources import atomic_write

QUOTE = re.compile(r"(<!-- output of: (roft [^\n]*?) -->\n)(.*?)(<!-- end of output -->)", re.S)


def register(sub) -> None:
    page = sub.add_parser("page", help="Markdown pages quoting roft's output: refresh the quotes, or check them")
    actions = page.add_subparsers(dest="page_command", required=True)
    refresh = actions.add_parser("refresh", help="run every quoted command and write its output into the page")
    refresh.add_argument("files", nargs="+", metavar="FILE", help="Markdown pages")
    refresh.set_defaults(handler=refresh_pages)
    check = actions.add_parser("check", help="run every quoted command; exit 1 naming each quote that differs")
    check.add_argument("files", nargs="+", metavar="FILE", help="Markdown pages")
    check.set_defaults(handler=check_pages)


def quoted_outputs(text: str) -> list[tuple[str, str]]:
    """``(command, quoted output)`` of each quote in a page's ``text``, in order."""
    return [(match.group(2), match.group(3)) for match in QUOTE.finditer(text)]


def command_output(command: str) -> str:
    """What ``command`` (``roft ARGS``) prints, run in this process; :class:`ValueError` when it fails."""
    import importlib

    main = importlib.import_module("orchestrator.cli").main  # the package that registers this module, at run time
    argv = shlex.split(command)[1:]
    if argv[:1] == ["page"]:
        raise ValueError(f"a page quotes {command!r}; accepted: any roft command but roft page")
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise ValueError(f"the quoted command `{command}` failed (exit {code}); its error is above")
    return out.getvalue()


def _read(file: str) -> str:
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"page {file!r} is not a file; accepted: Markdown pages that quote roft's output")
    text = path.read_text()
    if not QUOTE.search(text):
        raise ValueError(f"page {file!r} quotes no output; accepted: pages with <!-- output of: roft ... --> quotes")
    return text


def refresh_pages(args) -> int:
    """``roft page refresh``: each page rewritten (whole, in one replace) only where a quote changed."""
    for file in args.files:
        text = _read(file)
        changed = 0

        def fresh(match: re.Match) -> str:
            nonlocal changed
            output = command_output(match.group(2))
            changed += output != match.group(3)
            return match.group(1) + output + match.group(4)

        new = QUOTE.sub(fresh, text)
        if new != text:
            atomic_write(Path(file), lambda fh: fh.write(new.encode()))
        print(f"{file}: {len(quoted_outputs(text))} quoted outputs, {changed} refreshed")
    return 0


def check_pages(args) -> int:
    """``roft page check``: 0 when every quote equals its command's output now, else 1 (each stale one named)."""
    stale = []
    for file in args.files:
        for command, quoted in quoted_outputs(_read(file)):
            if command_output(command) != quoted:
                stale.append(f"{file}: the quote of `{command}` differs from its output now")
    for line in stale:
        print(line)
    return 1 if stale else 0
