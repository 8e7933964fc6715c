"""The documentation stands alone and matches the code.

Fast checks, no Ray and no data: every relative link and every repository path named in the
Markdown documents exists; no document or module cites a document outside the repository; the
README stays short and names the set-up commands; the spec reference of docs/guide.md lists
exactly the keys that search_spaces/spec.py accepts, with the code's defaults.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("trainables", "orchestrator", "search_spaces", "deploy", "tests", "docs")
SKIPPED_DIRS = {"__pycache__", ".venv", ".git", ".pytest_cache", "build"}
PATH_PREFIXES = tuple(f"{d}/" for d in PACKAGE_DIRS)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
PARENT_PATH = re.compile(r"(?:\.\./)+[^\s`'\")\]]*")
# The name of the reference document the protocol was first written against; built here so that
# this file does not name it itself.
FOREIGN_CITATION = re.compile(r"\b" + "PROTO" + r"COL\b(?!_)")


def _files(suffixes: tuple[str, ...]) -> list[Path]:
    found = [p for p in REPO.glob("*") if p.is_file() and p.suffix in suffixes]
    for top in PACKAGE_DIRS:
        for path in (REPO / top).rglob("*"):
            if path.is_file() and path.suffix in suffixes and not SKIPPED_DIRS & set(path.relative_to(REPO).parts):
                found.append(path)
    return sorted(found)


def _docs() -> list[Path]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "deploy" / "README.md"]
    return [p for p in docs if p.is_file()]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _prose(text: str) -> str:
    """The Markdown without fenced code blocks (links and code spans there are not Markdown)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(2)) for m in HEADING.finditer(_prose(path.read_text()))}


def _inside_repo(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO)
    except ValueError:
        return False
    return True


def _exists_in_repo(path: Path) -> bool:
    """A file, or a folder holding at least one file (an emptied folder does not count)."""
    if path.is_file():
        return True
    return path.is_dir() and any(p.is_file() and "__pycache__" not in p.parts for p in path.rglob("*"))


def test_the_documents_exist():
    for name in ("README.md", "docs/guide.md", "docs/protocol.md", "docs/engine.md", "docs/store.md",
                 "docs/cluster.md", "docs/contributing.md", "deploy/README.md"):
        assert (REPO / name).is_file(), f"{name} is missing"


@pytest.mark.parametrize("doc", _docs(), ids=_rel)
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s), mailto and in-page anchors
        path = target.split("#", 1)[0]
        resolved = (doc.parent / path).resolve()
        if not _inside_repo(resolved):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    assert not broken, f"{_rel(doc)}: broken links: {', '.join(broken)}"


@pytest.mark.parametrize("doc", _docs(), ids=_rel)
def test_link_anchors_name_headings(doc):
    broken = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        resolved = (doc.parent / path).resolve() if path else doc
        if resolved.suffix != ".md" or not resolved.is_file():
            continue  # reported by test_relative_links_resolve
        if anchor not in _anchors(resolved):
            broken.append(f"{target} (headings: {', '.join(sorted(_anchors(resolved)))})")
    assert not broken, f"{_rel(doc)}: links to missing headings: {'; '.join(broken)}"


@pytest.mark.parametrize("doc", _docs(), ids=_rel)
def test_named_repository_paths_exist(doc):
    missing = []
    for token in CODE_SPAN.findall(_prose(doc.read_text())):
        token = token.strip()
        if not token.startswith(PATH_PREFIXES) or re.search(r"[\s*?<>{}\[\]$]", token):
            continue
        if not _exists_in_repo(REPO / token):
            missing.append(token)
    assert not missing, f"{_rel(doc)} names paths that are not in the repository: {', '.join(missing)}"


def _outside_mentions(path: Path, text: str) -> list[tuple[int, str]]:
    """``../`` paths in ``text`` that lead out of the repository.

    Relative to the file's own folder; in Markdown also relative to the repository root (where
    the documents' commands run), after link targets are taken out (test_relative_links_resolve
    checks those). The sibling ``shared`` data folder, which the Makefile may use as its default
    data root, is never named as a relative path.
    """
    if path.suffix == ".md":
        text = LINK.sub(lambda m: " " * len(m.group(0)), text)
    found = []
    for m in PARENT_PATH.finditer(text):
        bases = (path.parent, REPO) if path.suffix == ".md" else (path.parent,)
        if any(not _inside_repo(base / m.group(0)) for base in bases) or re.match(r"(?:\.\./)+shared\b", m.group(0)):
            found.append((text.count("\n", 0, m.start()) + 1, m.group(0)))
    return found


@pytest.mark.parametrize("path", _files((".md", ".py", ".yaml", ".yml")), ids=_rel)
def test_nothing_outside_the_repository_is_cited(path):
    text = path.read_text(errors="replace")
    problems = [f"line {text.count(chr(10), 0, m.start()) + 1}: cites {m.group(0)!r}, a document outside the "
                "repository (cite docs/protocol.md instead)" for m in FOREIGN_CITATION.finditer(text)]
    problems += [f"line {line}: names {name!r}, a path outside the repository"
                 for line, name in _outside_mentions(path, text)]
    assert not problems, f"{_rel(path)}:\n  " + "\n  ".join(problems)


def test_readme_is_short():
    text = (REPO / "README.md").read_text()
    lines = text.count("\n") + (not text.endswith("\n"))
    assert lines <= 160, f"README.md has {lines} lines; keep it at most 160 and move material into docs/"


@pytest.mark.parametrize("command", ["make demo", "make test", "make test-all"])
def test_readme_names_the_set_up_commands(command):
    text = (REPO / "README.md").read_text()
    assert re.search(re.escape(command) + r"(?![\w-])", text), f"README.md does not name `{command}`"


# ---- the spec reference of docs/guide.md -------------------------------------------------------

def _schema():
    """What search_spaces/spec.py accepts: top-level keys, section keys, search keys."""
    from search_spaces import spec

    top = getattr(spec, "TOP_KEYS", None) or spec._TOP_KEYS
    sections = getattr(spec, "SECTIONS", None) or spec._SECTIONS
    return spec, tuple(top), {name: tuple(keys) for name, keys in sections.items()}, tuple(spec.SEARCH_KEYS)


def _reference_rows() -> dict[str, list[str]]:
    """Rows of the tables under '## Spec reference': dotted key -> the other cells."""
    text = (REPO / "docs" / "guide.md").read_text()
    match = re.search(r"^## Spec reference[ \t]*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/guide.md has no '## Spec reference' section"
    rows: dict[str, list[str]] = {}
    for line in match.group(1).splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        key = re.fullmatch(r"`([^`]+)`", cells[0])
        if key:
            assert key.group(1) not in rows, f"docs/guide.md: {key.group(1)} is listed twice in the spec reference"
            rows[key.group(1)] = cells[1:]
    return rows


def _accepted_keys() -> set[str]:
    from trainables.methods import METHODS

    _, top, sections, search_keys = _schema()
    keys = set(top)
    keys |= {f"{section}.{key}" for section, names in sections.items() for key in names}
    keys |= {f"methods.<method>.{key}" for key in search_keys}
    keys |= {f"methods.{name}.{hp}" for name in METHODS.names() for hp in METHODS.get(name).hyperparameters}
    return keys


def test_spec_reference_lists_exactly_the_accepted_keys():
    documented, accepted = set(_reference_rows()), _accepted_keys()
    missing, unknown = sorted(accepted - documented), sorted(documented - accepted)
    assert not missing and not unknown, (
        "the spec reference in docs/guide.md differs from what search_spaces/spec.py accepts:\n"
        + (f"  accepted but not documented: {', '.join(missing)}\n" if missing else "")
        + (f"  documented but not accepted: {', '.join(unknown)}\n" if unknown else "")
        + "  (keys are dotted: top-level keys, <section>.<key>, methods.<method>.<search key>, "
          "methods.<name>.<hyper-parameter>)")


def _same_default(cell: str, expected) -> bool:
    cell = cell.replace("`", "").strip()
    if isinstance(expected, bool):
        return cell.split()[0] == str(expected).lower() if cell else False
    if expected is None:
        return cell.startswith("null")
    if isinstance(expected, (int, float)):
        try:
            return float(cell.split()[0].replace(",", "")) == float(expected)
        except (IndexError, ValueError):
            return False
    return cell.split()[0] == str(expected) if cell else False


def test_spec_reference_defaults_are_the_code_defaults():
    from trainables.core.config import TrainingRecipe
    from trainables.methods import METHODS

    spec, _, _, search_keys = _schema()
    rows = _reference_rows()
    expected = {}
    for section, cls in (("training", TrainingRecipe), ("resources", spec.Resources), ("execution", spec.Execution)):
        expected |= {f"{section}.{f.name}": f.default for f in dataclasses.fields(cls)}
    search_defaults = {f.name: f.default for f in dataclasses.fields(spec.HyperparameterSearch)}
    expected |= {f"methods.<method>.{key}": search_defaults[key] for key in search_keys if key in search_defaults}
    for name in METHODS.names():
        expected |= {f"methods.{name}.{hp}": d.default for hp, d in METHODS.get(name).hyperparameters.items()}
    expected["subset_seed"] = next(f.default for f in dataclasses.fields(spec.SweepSpec) if f.name == "subset_seed")
    wrong = [f"{key}: documented {rows[key][1]!r}, code {value!r}" for key, value in sorted(expected.items())
             if key in rows and len(rows[key]) > 1 and not _same_default(rows[key][1], value)]
    assert not wrong, "docs/guide.md, spec reference: defaults differ from the code:\n  " + "\n  ".join(wrong)


def _code_ranges() -> dict[str, str]:
    """Dotted key -> the range the code accepts, in the words of its errors without the article
    (``integer from 1 to 100,000``), for every bounded setting and hyper-parameter."""
    from trainables.core.config import accepted_range
    from trainables.methods import METHODS

    spec = _schema()[0]
    ranges = {}
    for section, rules in (getattr(spec, "SECTIONS", None) or spec._SECTIONS).items():
        for key, rule in rules.items():
            if isinstance(rule, tuple) and len(rule) == 3 and rule[0] in (int, float):
                ranges[f"{section}.{key}"] = accepted_range(*rule)
    for field in dataclasses.fields(spec.HyperparameterSearch):
        if "maximum" in field.metadata:
            ranges[f"methods.<method>.{field.name}"] = accepted_range(
                int, field.metadata["minimum"], field.metadata["maximum"])
    for name in METHODS.names():
        for hp, declared in METHODS.get(name).hyperparameters.items():
            if declared.minimum is not None and declared.maximum is not None:
                ranges[f"methods.{name}.{hp}"] = accepted_range(declared.type, declared.minimum, declared.maximum)
    ranges = {key: text.split(" ", 1)[1] for key, text in ranges.items()}
    ranges["subset_seed"] = accepted_range(int, 0, spec.MAX_SEED).split(" ", 1)[1]
    ranges["seeds"] = f"{spec.MAX_SEEDS:,} integers from 0 to {spec.MAX_SEED:,}"
    return ranges


def test_spec_reference_ranges_are_the_code_ranges():
    """Every bounded number's documented type names exactly the range the code accepts, and every integer
    setting has one (a spec planned with epochs beyond float range once overflowed the estimate)."""
    rows, ranges = _reference_rows(), _code_ranges()
    assert ranges["training.epochs"] == "integer from 1 to 100,000"
    wrong = [f"{key}: documented {rows[key][0]!r}, the code accepts {accepted}" for key, accepted in sorted(ranges.items())
             if key in rows and accepted not in rows[key][0].replace("`", "")]
    documented = [key for key, cells in rows.items() if re.search(r"\bfrom -?[\d.,e+-]+ to ", cells[0]) and key not in ranges]
    assert not wrong and not documented, (
        "docs/guide.md, spec reference: ranges differ from the code:\n  " + "\n  ".join(wrong)
        + "".join(f"\n  {key}: a documented range the code does not declare" for key in documented))
