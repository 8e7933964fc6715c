"""orchestrator.bench.plan: a re-plan against a store on S3, its requests counted, and no impossible figure."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from orchestrator.bench.plan import Replan, _check, bench_plan
from orchestrator.bench.s3_requests import Requests


def figures(**changes) -> Replan:
    plain = Requests(count=Counter({"LIST": 98}), server_s=Counter({"LIST": 40.0}))
    reads = Requests(count=Counter({"LIST": 99}), server_s=Counter({"LIST": 41.0}))
    base = dict(objects=97_344, plain_s=45.0, total_s=50.0, reads_s=46.0, pending=0,
                plain_requests=plain, requests=reads)
    return Replan(**{**base, **changes})


def test_figures_that_cannot_be_right_are_refused_not_printed():
    _check(figures())
    _check(figures(plain_requests=None, requests=None))  # a store whose requests were not counted
    assert figures().planning_s == pytest.approx(4.0)
    with pytest.raises(RuntimeError, match="store reads of 51.000 s in a re-plan of 50.000 s"):
        _check(figures(reads_s=51.0))
    with pytest.raises(RuntimeError, match=r"made 97 LIST requests counted for 97,344 names, which need at least 98"):
        _check(figures(requests=Requests(count=Counter({"LIST": 97}))))
    with pytest.raises(RuntimeError, match=r"the plain listing: the server answered its LIST requests in 46.000 s, "
                                           r"more than the 45.000 s it took"):
        _check(figures(plain_requests=Requests(count=Counter({"LIST": 98}), server_s=Counter({"LIST": 46.0}))))


def test_bench_plan_against_s3_counts_the_lists_of_the_replan(real_env, s3_store_uri, capsys):
    result = bench_plan("mini.yaml", seeds=3, store=s3_store_uri, per_trial_files=True, writers=4)
    out = capsys.readouterr().out
    assert "planned again against the 12-row store" in out and "(0 pending)" in out
    # trials/ (12 objects: one LIST) and failures/ (none: one LIST); nothing read per trial
    assert re.search(r"store reads \(done_keys, failed_keys\): [\d.]+ s for 12 objects in trials/: 2 LIST requests "
                     r"\(no other request\); the server answered the LISTs in [\d.]+ s \(\d+%\)", out), out
    assert re.search(r"a plain listing of trials/ in the same run .*: [\d.]+ s: 1 LIST request \(no other request\)",
                     out), out
    assert result["LIST requests in the re-plan"] == 2 and result["objects in trials/"] == 12
    assert 0 <= result["store reads in the re-plan"] <= result["plan against the full store"]
