"""``roft submit``: a sweep submitted to a Ray cluster as a Ray job (:mod:`orchestrator.sweep.submit`)."""

from __future__ import annotations

import sys

from orchestrator.cli.common import add_data_root, add_store
from orchestrator.cli.sweep import add_sweep_options, sweep_option_argv
from trainables.core.paths import user_path


def register(sub) -> None:
    submit = sub.add_parser(
        "submit",
        help="submit a sweep to a Ray cluster as a Ray job: this checkout, the data root, the store and "
        "its credentials go with it",
    )
    submit.add_argument("spec", help="YAML sweep spec: a file below the working directory, or a bundled spec's name")
    add_store(submit)
    submit.add_argument(
        "--address",
        default=None,
        help="the head's Ray Jobs API (its dashboard), http://HOST:PORT (default: "
        "$RAY_API_SERVER_ADDRESS, else an http address in $RAY_ADDRESS, else http://127.0.0.1:8265)",
    )
    submit.add_argument(
        "--wait", action="store_true", help="follow the job's log until it ends; exit 0 when it succeeded, 1 otherwise"
    )
    submit.add_argument(
        "--job-id", default=None, help="the job's submission id (default: roft-<sweep>-<UTC time>-<4 hex digits>)"
    )
    submit.add_argument(
        "--working-dir",
        default=None,
        metavar="DIR",
        help="folder uploaded as the job's working directory (default: the checkout roft runs from; "
        "none for an installed roft, whose cluster then runs its own)",
    )
    submit.add_argument(
        "--no-credentials",
        action="store_true",
        help="forward no AWS_* credentials (nodes that have their own, e.g. instance roles)",
    )
    add_sweep_options(submit)
    add_data_root(submit)
    submit.set_defaults(handler=submit_sweep)


def submit_sweep(args) -> int:
    from orchestrator.sweep.submit import build_submission, checkout, follow, follow_lines, submit
    from search_spaces import load_spec
    from search_spaces.slices import narrow

    spec = load_spec(args.spec)  # a spec with errors is refused here, not on the cluster
    narrow(spec, args.only or ())  # and so is a slice of values the spec does not hold
    working_dir = checkout() if args.working_dir is None else user_path(args.working_dir, "--working-dir").resolve()
    if working_dir is not None and not working_dir.is_dir():
        raise FileNotFoundError(f"--working-dir {args.working_dir!r} is not a folder")
    submission = build_submission(
        args.spec,
        args.store,
        sweep_option_argv(args),
        address=args.address,
        data_root=args.data_root,
        working_dir=working_dir,
        job_id=args.job_id,
        credentials=not args.no_credentials,
        spec_name=spec.name,
    )
    job_id = submit(submission)
    print(job_id)
    print(f"submitted sweep {spec.name} to {submission.address} as job {job_id}: {submission.command}", file=sys.stderr)
    print(f"  working directory: {working_dir or 'none (the cluster runs its installed roft)'}", file=sys.stderr)
    print(f"  forwarded: {', '.join(submission.forwarded) or 'nothing'} (values not shown)", file=sys.stderr)
    if "ROFT_DATA" not in submission.settings:
        print("  no data root (--data-root, $ROFT_DATA): the job downloads the files it needs", file=sys.stderr)
    if "://" in submission.store and not submission.credentials:
        print("  no store credentials forwarded: the cluster's nodes use their own", file=sys.stderr)
    for line in follow_lines(submission):
        print(line, file=sys.stderr)
    if not args.wait:
        return 0
    sys.stderr.flush()
    try:
        status = follow(submission.address, job_id, sys.stdout)
    except KeyboardInterrupt:
        print(f"stopped following job {job_id}, which goes on; `ray job stop {job_id}` stops it", file=sys.stderr)
        return 130
    print(f"job {job_id}: {status}", file=sys.stderr)
    return 0 if status == "SUCCEEDED" else 1
