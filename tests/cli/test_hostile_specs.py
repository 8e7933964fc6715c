"""Generated hostile sweep specs (Hypothesis): wrong types, missing and unknown keys, out-of-range numbers,
empty and huge grids, unicode and control characters, names shaped like paths, YAML alias bombs, binary
files. Every one is refused by ``roft sweep --dry-run`` and ``roft reading --spec`` with exit 2, a short
message naming the problem, no traceback, and nothing written (tests/hostile.py, :func:`refused`)."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

import yaml  # noqa: E402
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from search_spaces.spec import _TOP_KEYS  # noqa: E402
from tests.hostile import NASTY_TEXT, PATHLIKE, VALUES, make_sandbox, refused, without  # noqa: E402
from trainables.data.splits import SPLITS  # noqa: E402
from trainables.data.tasks import TASKS  # noqa: E402
from trainables.methods import METHODS  # noqa: E402
from trainables.models.backbones import BACKBONES  # noqa: E402

pytestmark = [pytest.mark.hostile]

BASE = {"name": "hostile", "backbones": ["scratch-gin"], "methods": {"lp": {}}, "tasks": ["esol"],
        "splits": ["scaffold"], "label_settings": ["fewshot:16"], "seeds": [0],
        "training": {"epochs": 1, "batch_size": 8}, "model": {"num_layers": 2, "emb_dim": 8}}
NUMERIC = {"training": ["epochs", "batch_size", "lr", "weight_decay", "dropout"], "model": ["num_layers", "emb_dim"],
           "resources": ["cpu", "gpu"], "execution": ["chunk_size", "max_failures", "max_concurrent", "fuse_max"]}
NAME = r"(?!\.+$)[A-Za-z0-9_.-]{1,100}"
# Above the maximum of every setting in NUMERIC (the largest: 1,000,000), up to integers beyond float range and
# floats near its end: each is refused, never planned.
BEYOND_EVERY_MAXIMUM = st.one_of(st.integers(min_value=10**7), st.floats(min_value=1e7, allow_infinity=False))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, monkeypatch_module):
    root = make_sandbox(tmp_path_factory.mktemp("hostile-specs"))
    monkeypatch_module.setenv("ROFT_CACHE", str(root / "cache"))
    monkeypatch_module.delenv("ROFT_DATA", raising=False)  # nothing is downloaded: every spec is refused first
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _bad_names(registry) -> st.SearchStrategy:
    return without(st.one_of(NASTY_TEXT, VALUES), lambda v: isinstance(v, str) and v in registry)


def _invalid_name(value) -> bool:
    import re

    return not (isinstance(value, str) and re.fullmatch(NAME, value))


MUTATIONS = st.one_of(
    st.sampled_from(["name", "backbones", "methods", "tasks", "splits", "label_settings", "seeds"]).map(
        lambda key: ("missing", key, None)),
    st.tuples(st.just("unknown key"), without(NASTY_TEXT, _TOP_KEYS), VALUES),
    st.tuples(st.just("name"), st.just("name"), without(st.one_of(NASTY_TEXT, PATHLIKE, VALUES), lambda v: not _invalid_name(v))),
    st.tuples(st.just("not a list"), st.sampled_from(["backbones", "tasks", "splits", "label_settings"]),
              without(VALUES, lambda v: isinstance(v, list) and v)),
    st.tuples(st.just("method"), without(st.one_of(NASTY_TEXT, st.integers(), st.none(), st.booleans()),
                                         lambda v: isinstance(v, str) and v in METHODS), VALUES),
    st.tuples(st.just("hyper-parameter"), st.sampled_from(["lp", "full-ft", "wise-ft", "l2-sp"]),
              st.dictionaries(NASTY_TEXT.filter(lambda k: k not in ("freeze_bn_stats", "alpha", "tune")),
                              VALUES, min_size=1, max_size=3)),
    st.tuples(st.just("seeds"), st.just("seeds"), st.one_of(
        st.lists(st.integers(max_value=-1), min_size=1, max_size=5), st.just([]),
        st.builds(lambda a, b: {"range": [a, b]}, st.integers(-(2**40), -1), st.integers(0, 2**40)),
        st.builds(lambda a: {"range": [0, a]}, st.integers(10_001, 2**62)),
        without(VALUES, lambda v: isinstance(v, list) and all(isinstance(s, int) and s >= 0 for s in v) and v))),
    st.tuples(st.just("number"), st.sampled_from([(s, k) for s, ks in NUMERIC.items() for k in ks]),
              st.one_of(st.integers(max_value=-1), st.floats(max_value=-1e-9), st.just(float("nan")),
                        st.just(float("-inf")), st.just(float("inf")), BEYOND_EVERY_MAXIMUM, NASTY_TEXT, st.lists(st.integers(), max_size=2), st.booleans())),
    st.tuples(st.just("section key"), st.sampled_from(list(NUMERIC)), NASTY_TEXT.filter(
        lambda k: k not in sum(NUMERIC.values(), []))),
    st.tuples(st.just("label"), st.just("label_settings"), st.lists(without(st.one_of(NASTY_TEXT, VALUES), lambda v: (
        v == "full" or (isinstance(v, str) and v.split(":")[0] in ("fewshot", "ratio")))), min_size=1, max_size=3)),
    st.tuples(st.just("hp value"), st.sampled_from([("wise-ft", "alpha"), ("lp-ft", "lp_epochs"), ("l2-sp", "d"),
                                                    ("roft-mol", "groups")]),
              st.one_of(st.integers(min_value=2**1100), st.just(float("nan")), st.just(float("inf")),
                        st.lists(st.integers(min_value=2**1100), min_size=1, max_size=2))),
    st.tuples(st.just("huge grid"), st.just("l2-sp"), st.integers(224, 400)),
)


def _mutated(mutation) -> dict:
    kind, key, value = mutation
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    if kind == "missing":
        del spec[key]
    elif kind == "unknown key":
        spec[key] = value
    elif kind == "name":
        spec["name"] = value
    elif kind == "not a list":
        spec[key] = value
    elif kind == "method":
        spec["methods"][key] = value
    elif kind == "hyper-parameter":
        spec["methods"] = {key: value}
    elif kind == "hp value":
        method, name = key
        spec["methods"] = {method: {name: value}}
    elif kind == "seeds":
        spec["seeds"] = value
    elif kind == "number":
        section, name = key
        spec.setdefault(section, {})[name] = value
    elif kind == "section key":
        spec.setdefault(key, {})[value] = 1
    elif kind == "label":
        spec["label_settings"] = value
    elif kind == "huge grid":  # n x n x 2 points of L2-SP's grid, over the limit from n = 224
        spec["methods"] = {"l2-sp": {"d": [10.0 ** -(i / 10) for i in range(value)],
                                     "d_head": [10.0 ** -(i / 10) for i in range(value)],
                                     "double_forward": [False, True]}}
    return spec


def _write(sandbox, text: str | bytes) -> str:
    path = sandbox / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return "spec.yaml"


def _check(sandbox, spec_file: str) -> None:
    refused(["sweep", spec_file, "--store", "store", "--dry-run"], sandbox, mentions=spec_file)
    refused(["reading", "--store", "store", "--spec", spec_file], sandbox, mentions=spec_file)


@given(MUTATIONS)
@example(("name", "name", ".."))  # a sweep named ".." made Tune write its state into the store's root
@example(("name", "name", "x" * 300))  # longer than a file name may be
@example(("seeds", "seeds", {"range": [0, 100_000_000]}))  # planned 10^8 trials for minutes
@example(("seeds", "seeds", {"range": [-5, 100_000_000]}))  # its error printed a list of 10^8 seeds
@example(("huge grid", "l2-sp", 400))  # 320,000 points
@example(("number", ("training", "lr"), float("nan")))  # NaN compared false with the minimum: accepted
@example(("number", ("training", "epochs"), 2**1100))  # an integer beyond float range: the estimate overflowed
@example(("number", ("training", "epochs"), 10**7))  # within float range, yet beyond any sensible recipe
@example(("number", ("resources", "cpu"), float("inf")))
@example(("number", ("training", "lr"), 10**400))  # float() of it raised OverflowError: a traceback
@example(("hp value", ("wise-ft", "alpha"), 10**400))  # the same in a method's hyper-parameter
def test_a_generated_invalid_spec_is_refused_in_a_few_lines(sandbox, mutation):
    _check(sandbox, _write(sandbox, yaml.safe_dump(_mutated(mutation), allow_unicode=True)))


@given(st.data())
def test_a_spec_with_an_unknown_registry_entry_is_refused(sandbox, data):
    field, registry = data.draw(st.sampled_from([("backbones", BACKBONES), ("tasks", TASKS), ("splits", SPLITS),
                                                 ("methods", METHODS)]))
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    bad = data.draw(_bad_names(registry).filter(lambda v: isinstance(v, (str, int)) and not isinstance(v, bool)))
    if field == "methods":
        spec["methods"][bad] = {}
    else:
        spec[field].append(bad)
    _check(sandbox, _write(sandbox, yaml.safe_dump(spec, allow_unicode=True)))


@given(width=st.integers(2, 12), depth=st.integers(2, 12))
@example(width=2, depth=2)  # a list where a backbone name belongs: the registry lookup raised TypeError
@example(width=9, depth=9)  # 9^9 references: safe_load's shared lists, then the error message's repr, hung
def test_yaml_alias_bombs_are_refused(sandbox, width, depth):
    lines = ['l0: &l0 ["lol"]'] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    text = "\n".join(lines + [f"seeds: *l{depth - 1}", f"backbones: *l{depth - 1}", "name: bomb"])
    _check(sandbox, _write(sandbox, text))


@given(st.one_of(st.binary(min_size=1, max_size=2000),
                 st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.sampled_from([b"\x00" * 100, b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"\xff\xfe<\x00",
                                  b"!!python/object/apply:os.system ['touch pwned']", b"- [\n", b"{a: 1",
                                  b"&a [*a]", b"name: !!binary aGk=", b"~", b"[]", b"42"])))
def test_binary_and_non_mapping_files_are_refused(sandbox, blob):
    try:
        if isinstance(yaml.safe_load(blob.decode("utf-8")), dict):
            return  # a mapping: the other tests generate those
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        pass
    _check(sandbox, _write(sandbox, blob))
    assert not (sandbox / "pwned").exists()


@given(PATHLIKE | NASTY_TEXT.filter(lambda t: "\x00" not in t))
@example("x" * 300)  # longer than a file name may be: stat() raises OSError
def test_a_missing_spec_path_is_named(sandbox, path):
    try:
        if (sandbox / path).expanduser().is_file() or path.strip() in ("", "-"):
            return
    except OSError:
        pass
    refused(["sweep", path, "--store", "store", "--dry-run"], sandbox)
