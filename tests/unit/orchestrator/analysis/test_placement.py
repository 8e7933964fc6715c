"""Units, the most at once and the per-node table, from hand-made rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from orchestrator.analysis.placement import by_node, most_at_once, placement_lines, units_of

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def row(key: str, node: str | None, gpus: str | None, start: float | None, finish: float) -> dict:
    return {"trial_key": key, "sweep": "s", "node_ip": node, "gpu_ids": gpus,
            "started_at": None if start is None else T0 + timedelta(seconds=start),
            "finished_at": T0 + timedelta(seconds=finish)}


ROWS = [
    # a fused group of two on GPU 0 (shared start), then a single trial on GPU 0
    row("a", "10.0.0.2", "0", 0, 10), row("b", "10.0.0.2", "0", 0, 11), row("c", "10.0.0.2", "0", 11, 20),
    # GPU 1 of the same node overlaps the group; another node's trial without a GPU
    row("d", "10.0.0.2", "1", 5, 15), row("e", "10.0.0.3", None, 2, 4),
    # a row written before roft 0.3: no placement
    row("old", None, None, None, 3),
]


def test_members_of_a_fused_group_are_one_unit_ending_with_its_last_member():
    units, unplaced = units_of(ROWS)
    assert unplaced == 1
    assert [(u.node, u.gpus, u.trials) for u in units] == [
        ("10.0.0.2", "0", 2), ("10.0.0.3", "", 1), ("10.0.0.2", "1", 1), ("10.0.0.2", "0", 1)]
    assert units[0].finish == T0 + timedelta(seconds=11)


def test_most_at_once_counts_intervals_that_contain_a_start_and_a_finish_frees_its_slot():
    units, _ = units_of(ROWS)
    count, live = most_at_once(units)
    assert count == 2 and {u.gpus for u in live} == {"0", ""}  # at 2 s: the group and node .3's trial
    first, second = by_node(units)
    assert (first.node, first.most_at_once, first.devices_then, first.trials) == ("10.0.0.2", 2, {"0": 1, "1": 1}, 4)
    assert (second.node, second.most_at_once, second.devices_then) == ("10.0.0.3", 1, {"": 1})
    # back to back on one device (finish 11 == next start 11) is not overlap
    assert most_at_once([u for u in units if u.gpus == "0"])[0] == 1


def test_the_table_and_timeline():
    lines = placement_lines(ROWS, timeline=True)
    assert lines[2] == "| 10.0.0.2 | 3 | 4 | 2 | GPU 0: 1, GPU 1: 1 | 0 - 20 |"
    assert lines[3] == "| 10.0.0.3 | 1 | 1 | 1 | no GPU: 1 | 2 - 4 |"
    assert "1 rows hold no placement" in lines[4]
    assert lines[-1] == ("Units (node, GPU: start-finish s): 10.0.0.2 0: 0-11, 10.0.0.3 -: 2-4, 10.0.0.2 1: 5-15, "
                         "10.0.0.2 0: 11-20")


def test_rows_without_any_placement_say_so():
    assert placement_lines([row("old", None, None, None, 3)]) == [
        "no row holds a placement (1 rows written before roft 0.3 or outside a sweep)"]
