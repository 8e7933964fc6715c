"""``roft store compact|list|forget|clean``: maintenance of a results store."""

from __future__ import annotations

import sys

from orchestrator.cli.arguments import age
from orchestrator.cli.common import add_store, add_where, existing_store

STORE_LIST_COLUMNS = [
    "trial_key",
    "sweep",
    "backbone",
    "method_label",
    "task",
    "split",
    "label_setting",
    "seed",
    "val_metric",
    "test_metric",
    "engine",
    "finished_at",
]
UNLOCKED_HELP = (
    "s3:// stores: skip the lease check (a sweep's or compaction's lease on the store) and {what} it "
    "anyway; only when every sweep on it has stopped and its lease is stale"
)


def register(sub) -> None:
    store_parser = sub.add_parser("store", help="maintenance of a results store")
    store_sub = store_parser.add_subparsers(dest="store_command", required=True)

    compact = store_sub.add_parser("compact", help="merge the per-trial files into large ones (refuses during a sweep)")
    add_store(compact)
    compact.add_argument("--unlocked", action="store_true", help=UNLOCKED_HELP.format(what="compact"))
    compact.set_defaults(handler=compact_store)

    listing = store_sub.add_parser("list", help="one line per trial: key, cell, seed, metrics, engine")
    add_store(listing)
    add_where(listing, "method=wise-ft")
    listing.add_argument("--keys", action="store_true", help="trial keys only, one per line (for `roft store forget`)")
    listing.add_argument(
        "--stale",
        action="store_true",
        help="only stale trials: rows whose method or molecules this roft computes differently "
        "(their configuration now has another key; a sweep reruns it)",
    )
    listing.set_defaults(handler=list_trials)

    forget = store_sub.add_parser(
        "forget",
        help="remove trials (row, epochs, alpha points, checkpoint, failure "
        "record) so that the next sweep runs them again",
    )
    forget.add_argument("keys", nargs="+", metavar="KEY", help="trial keys (the trial_key column, 24 hex digits)")
    add_store(forget)
    forget.add_argument("--unlocked", action="store_true", help=UNLOCKED_HELP.format(what="forget on"))
    forget.set_defaults(handler=forget_trials)

    clean = store_sub.add_parser(
        "clean",
        help="remove temporaries of interrupted writes, Tune state of killed "
        "sweeps and running markers of lost workers (refuses during a sweep)",
    )
    add_store(clean)
    clean.add_argument(
        "--older-than",
        type=age,
        default="1h",
        metavar="AGE",
        help="temporaries, and running markers whose heartbeat is, at least this old (s, m, h, d; "
        "default 1h: a write in flight elsewhere is never touched)",
    )
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    clean.add_argument("--unlocked", action="store_true", help=UNLOCKED_HELP.format(what="clean"))
    clean.set_defaults(handler=clean_store)


def list_trials(args) -> int:
    from orchestrator.analysis.tables import load_trials, parse_where
    from orchestrator.store.staleness import stale_mask

    trials = load_trials(existing_store(args.store), parse_where(args.where), [*STORE_LIST_COLUMNS, "trial_config"])
    stale = stale_mask(trials)
    trials = trials.drop(columns="trial_config")
    if args.stale:
        trials = trials[stale]
    elif stale.any():  # the column appears only where some row is stale
        trials = trials.assign(stale=stale.map({True: "stale", False: ""}))
    trials = trials.sort_values(["task", "backbone", "method_label", "label_setting", "split", "seed"])
    if args.keys:
        print("\n".join(trials["trial_key"]))
    else:
        print(trials.to_string(index=False) if len(trials) else "no trials match")
        print(f"{len(trials)} trial(s)", file=sys.stderr)
    return 0


def compact_store(args) -> int:
    from orchestrator.store.compact import compact

    print(compact(existing_store(args.store), unlocked=args.unlocked))
    return 0


def forget_trials(args) -> int:
    from orchestrator.store.forget import forget

    print(forget(existing_store(args.store), args.keys, unlocked=args.unlocked))
    return 0


def clean_store(args) -> int:
    from orchestrator.store.clean import clean

    print(clean(existing_store(args.store), args.older_than, args.dry_run, args.unlocked))
    return 0
