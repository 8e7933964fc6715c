"""What a store's trials cost, from their rows alone: trials, worker-hours and wall time.

* **worker-hours**: the sum of the rows' ``wall_seconds`` over 3,600. A fused trial's ``wall_seconds``
  is its share of its group's time, so the sum is the time of the Ray workers that trained the trials
  (each holding the CPUs or GPU share its spec asked for: one CPU core in the CPU specs of docs/results).
* **wall time**: the length of the union of the rows' ``[started_at, finished_at]`` intervals, so the
  hours between runs (no trial in flight) do not count, and trials that ran at once count once.
  A row without ``started_at`` (written before it was recorded) spans ``wall_seconds`` before its end.

    roft reading --store STORE --cost
"""

from __future__ import annotations

import pandas as pd

NEEDED = ["method", "wall_seconds", "started_at", "finished_at"]


def busy_seconds(starts: pd.Series, ends: pd.Series) -> float:
    """Seconds covered by the union of the intervals ``[starts[i], ends[i]]`` (timestamps)."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(zip(starts, ends)):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += (current_end - current_start).total_seconds()
    return total


def cost_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per method (rows) and in all (last row): ``trials``, ``worker_hours``, ``worker_minutes_per_trial``."""
    rows = trials.groupby("method", sort=True)["wall_seconds"].agg(["count", "sum"])
    rows.loc["(all)"] = [len(trials), trials["wall_seconds"].sum()]
    return pd.DataFrame(
        {
            "trials": rows["count"].astype(int),
            "worker_hours": rows["sum"] / 3600.0,
            "worker_minutes_per_trial": rows["sum"] / 60.0 / rows["count"].clip(lower=1),
        }
    )


def figure(value: float) -> str:
    """``value`` with two decimals, or two significant digits below 1 (so a small cost never reads 0.00)."""
    return f"{value:.2f}" if value >= 1 or value == 0 else f"{value:.2g}"


def cost_text(trials: pd.DataFrame) -> str:
    """The cost table as Markdown, then one line of wall time."""
    if trials.empty:
        return "the store holds no trial rows: nothing was spent"
    ends = pd.to_datetime(trials["finished_at"], utc=True)
    starts = pd.to_datetime(trials["started_at"], utc=True)
    starts = starts.fillna(ends - pd.to_timedelta(trials["wall_seconds"], unit="s"))
    table = cost_table(trials)
    lines = ["| method | trials | worker-hours | worker-minutes per trial |", "|---|---|---|---|"]
    lines += [
        f"| {method} | {int(row.trials):,} | {figure(row.worker_hours)} | {figure(row.worker_minutes_per_trial)} |"
        for method, row in table.iterrows()
    ]
    wall = busy_seconds(starts, ends) / 3600.0
    lines += [
        "",
        f"Wall time with a trial in flight: {figure(wall)} h, from {starts.min():%Y-%m-%d %H:%M} to "
        f"{ends.max():%Y-%m-%d %H:%M} UTC. Worker-hours: the rows' wall_seconds summed (a fused trial's "
        "is its share of its group's), one Ray worker each.",
    ]
    return "\n".join(lines)
