"""search_spaces/slices.py: a slice plans only trials of its spec, slices add up to the spec, and a value
the spec does not hold is refused naming it and the accepted values."""

from __future__ import annotations

import pytest

from search_spaces import parse_spec
from search_spaces.slices import describe, narrow, parse_selection
from trainables.methods.dependencies import parent_spec

GRID = {
    "name": "g",
    "backbones": ["hu-gcn-contextpred", "scratch-gin"],
    "methods": {"full-ft": {}, "lp": {}, "wise-ft": {"alpha": [0.1, 0.5]}},
    "tasks": ["esol", "bbbp"],
    "splits": ["scaffold"],
    "label_settings": ["fewshot:16", "fewshot:32"],
    "seeds": [0, 1, 2],
}


@pytest.fixture
def plan(tmp_path):
    """Plans a spec's grid trials offline: file hashes of an empty data root, the same for every slice."""
    from orchestrator.sweep.plan import expand
    from trainables.core.data_root import DataRoot

    return lambda spec: expand(spec, DataRoot(tmp_path))[0]


def test_a_selection_parses_axis_and_values():
    assert parse_selection("task=bbbp,esol") == ("task", ("bbbp", "esol"))
    assert parse_selection("label-setting=fewshot:16") == ("label_setting", ("fewshot:16",))
    for text in ("task", "tasks=bbbp", "task=", "=bbbp", "task=,"):
        with pytest.raises(ValueError, match="accepted: AXIS=VALUE"):
            parse_selection(text)


def test_slices_are_trials_of_the_spec_and_add_up_to_it(plan):
    def keys(spec) -> set[str]:
        return {t.key() for t in plan(spec)}

    whole = parse_spec(GRID)
    by_seed = [narrow(whole, [("seed", (str(s),))]) for s in (0, 1, 2)]
    assert [s.seeds for s in by_seed] == [(0,), (1,), (2,)]
    assert set().union(*(keys(s) for s in by_seed)) == keys(whole)
    assert all(keys(s) <= keys(whole) for s in by_seed)
    assert sum(len(keys(s)) for s in by_seed) == len(keys(whole))
    both = narrow(whole, [("task", ("bbbp",)), ("backbone", ("scratch-gin",)), ("label_setting", ("fewshot:32",))])
    assert (both.tasks, both.backbones, both.label_settings) == (("bbbp",), ("scratch-gin",), ("fewshot:32",))
    assert len(keys(both)) == 3 * 4  # seeds x method points


def test_repeated_selections_of_an_axis_add_up_in_the_spec_order():
    whole = parse_spec(GRID)
    assert narrow(whole, [("seed", ("2",)), ("seed", ("0", "2"))]).seeds == (0, 2)
    assert narrow(whole, []) == whole


def test_a_method_slice_keeps_the_parents_it_needs(plan):
    from orchestrator.sweep.plan import with_parents

    wise = narrow(parse_spec(GRID), [("method", ("wise-ft",))])
    assert {m for m, _ in wise.methods} == {"wise-ft"}
    planned, added = with_parents(plan(wise))
    assert added == 2 * 2 * 2 * 3  # one Full-FT parent per backbone, task, label setting and seed
    assert {parent_spec(t).key() for t in planned if t.method == "wise-ft"} <= {t.key() for t in planned}


def test_a_value_outside_the_spec_is_refused_naming_it_and_the_accepted_ones():
    whole = parse_spec(GRID)
    with pytest.raises(ValueError) as info:
        narrow(whole, [("task", ("bbbp", "tox21"))])
    assert str(info.value) == "--only task=bbbp,tox21: 'tox21' is not among the spec's tasks; accepted: esol, bbbp"
    with pytest.raises(ValueError, match="'3', '4' are not among the spec's seeds; accepted: 0, 1, 2"):
        narrow(whole, [("seed", ("3", "4"))])
    with pytest.raises(ValueError, match="accepted: full-ft, lp, wise-ft"):
        narrow(whole, [("method", ("roft-mol",))])


def test_the_description_names_the_slice_and_the_whole():
    line = describe(parse_spec(GRID), [("task", ("bbbp",)), ("seed", ("0", "1"))])
    assert line.startswith("slice: task=bbbp (of 2 tasks); seed=0,1 (of 3 seeds); the store keeps the whole spec")
