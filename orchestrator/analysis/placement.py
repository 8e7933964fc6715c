"""Where a sweep's trials ran, from the rows alone: per node and device, how many units, and the
most that trained at once.

A *unit* is what one Ray trial trained: one trial, or one fused group, whose members share their
node, devices and ``started_at`` (the group's start). Each unit occupies the interval
``[started_at, finished_at)`` (a group's: its last member's finish); the most at once is the
largest number of intervals that contain one moment, found at the units' starts. Rows of stores
written before roft 0.3 hold no placement (null ``node_ip`` / ``started_at``) and are counted
apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

COLUMNS = ["trial_key", "sweep", "node_ip", "gpu_ids", "started_at", "finished_at"]


@dataclass(frozen=True)
class Unit:
    node: str  # the Ray node's IP ("local" for a trial run outside Ray)
    gpus: str  # the assigned accelerator ids, "0" or "2,3"; "" for none
    start: datetime
    finish: datetime
    trials: int


@dataclass(frozen=True)
class NodePlacement:
    node: str
    units: list[Unit]
    most_at_once: int
    devices_then: dict[str, int]  # device ids -> units on them at that moment ("" for no GPU)

    @property
    def trials(self) -> int:
        return sum(unit.trials for unit in self.units)


def units_of(rows: list[dict]) -> tuple[list[Unit], int]:
    """The units of ``rows`` (dicts with :data:`COLUMNS`), by start; and how many rows held no placement."""
    groups: dict[tuple, list[dict]] = {}
    unplaced = 0
    for row in rows:
        if row.get("started_at") is None or row.get("finished_at") is None:
            unplaced += 1
            continue
        key = (row.get("node_ip") or "local", row.get("gpu_ids") or "", row["started_at"])
        groups.setdefault(key, []).append(row)
    units = [
        Unit(node, gpus, start, max(r["finished_at"] for r in members), len(members))
        for (node, gpus, start), members in groups.items()
    ]
    return sorted(units, key=lambda u: (u.start, u.node, u.gpus)), unplaced


def most_at_once(units: list[Unit]) -> tuple[int, list[Unit]]:
    """The largest number of ``units`` training at one moment, and those units (the earliest such moment)."""
    best: tuple[int, list[Unit]] = (0, [])
    for moment in sorted({unit.start for unit in units}):
        live = [unit for unit in units if unit.start <= moment < unit.finish]
        if len(live) > best[0]:
            best = (len(live), live)
    return best


def by_node(units: list[Unit]) -> list[NodePlacement]:
    """Per node (by IP): its units, the most at once there and the devices those used."""
    nodes = []
    for node in sorted({unit.node for unit in units}):
        mine = [unit for unit in units if unit.node == node]
        count, live = most_at_once(mine)
        nodes.append(NodePlacement(node, mine, count, dict(sorted(Counter(u.gpus for u in live).items()))))
    return nodes


def placement_lines(rows: list[dict], timeline: bool = False) -> list[str]:
    """A markdown table of :func:`by_node` (and, with ``timeline``, every unit's device and its
    start-finish in seconds from the first start)."""
    units, unplaced = units_of(rows)
    if not units:
        return [f"no row holds a placement ({unplaced} rows written before roft 0.3 or outside a sweep)"]
    t0 = units[0].start
    lines = [
        "| node | units | trials | most at once | their devices | first start - last finish (s) |",
        "|---|---|---|---|---|---|",
    ]
    for node in by_node(units):
        devices = ", ".join(f"GPU {ids}: {n}" if ids else f"no GPU: {n}" for ids, n in node.devices_then.items())
        span = (
            f"{(node.units[0].start - t0).total_seconds():.0f} - "
            f"{(max(u.finish for u in node.units) - t0).total_seconds():.0f}"
        )
        lines.append(f"| {node.node} | {len(node.units)} | {node.trials} | {node.most_at_once} | {devices} | {span} |")
    if unplaced:
        lines.append(f"\n{unplaced} rows hold no placement (written before roft 0.3).")
    if timeline:
        lines += [
            "",
            "Units (node, GPU: start-finish s): "
            + ", ".join(
                f"{u.node} {u.gpus or '-'}: {(u.start - t0).total_seconds():.0f}-{(u.finish - t0).total_seconds():.0f}"
                for u in units
            ),
        ]
    return lines
