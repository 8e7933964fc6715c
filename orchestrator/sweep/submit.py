"""A sweep submitted to a Ray cluster as a Ray job (``roft submit``).

``ray job submit`` runs its entry point on the head, with the ``python`` first on the PATH of the
head's ``ray start`` and with nothing of the submitting shell but what the job's runtime
environment carries. :func:`build_submission` makes that runtime environment complete:

* ``working_dir``: the checkout roft runs from, uploaded (Ray leaves out what ``.gitignore``
  lists; roft leaves out ``.git``), so the code that runs, on the head and on every worker, is
  the code submitted; the spec is a file below it or a bundled spec's name;
* ``env_vars``: the data root and the featurization cache (``ROFT_DATA``, ``ROFT_CACHE``; paths
  every node must reach), the submitted code's version (``ROFT_CODE_VERSION``: the upload has no
  git history), and for a store on object storage the credentials and region of the submitting
  environment (:data:`STORE_CREDENTIALS`, :data:`STORE_SETTINGS`);
* the entry point ``python -m orchestrator sweep SPEC --store STORE [options]``: no secret in it,
  as Ray prints it in the job's log and its job information.

Credentials are read from the environment when the job is submitted and go only into the job's
runtime environment: :class:`Submission` holds their names, not their values, and roft prints
the names only. Ray keeps the runtime environment in the cluster's job information (``ray job
list``, the dashboard, both behind the cluster's token), and its runtime-env agent logs it at
INFO level on every node that sets it up (``runtime_env_agent.log``), so a cluster that runs
jobs with credentials starts Ray with ``RAY_LOGGER_LEVEL=warning`` (``make cluster-up`` does), or
gives its nodes credentials of their own (instance roles) and is submitted to with
``--no-credentials``.

Authentication: Ray's token authentication is on for a head that has a token
(``~/.ray/auth_token``, which any ``ray.init`` on the machine creates). As ``ray start`` does, a
submission uses the token at hand when ``RAY_AUTH_MODE`` is unset; a cluster that refuses the
request is reported with what to set (:func:`auth_advice`).
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from trainables.core.paths import user_path

DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # the Jobs API of a head on this machine (its dashboard's port)
ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")  # as Ray's job CLI reads them
STORE_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
STORE_SETTINGS = ("AWS_DEFAULT_REGION", "AWS_REGION")
PATH_SETTINGS = ("ROFT_DATA", "ROFT_CACHE")  # folders the job's processes read; must exist on every node
CODE_VERSION_ENV = "ROFT_CODE_VERSION"  # read by orchestrator.version.code_version where no git checkout answers
URI_CREDENTIAL_KEYS = ("access_key", "secret_key", "session_token")
TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
TOKEN_FILE = "~/.ray/auth_token"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class Submission:
    """What a sweep's Ray job is made of. ``credentials`` are variable names: their values are read
    from the environment by :meth:`runtime_env`, at submission, and kept nowhere else."""

    address: str
    job_id: str
    entrypoint: tuple[str, ...]
    working_dir: Path | None
    store: str = ""  # as the job names it (no credentials in it)
    settings: dict[str, str] = field(default_factory=dict)  # variables that are no secret (paths, the code's version)
    credentials: tuple[str, ...] = ()  # names of the store's credential variables to forward

    @property
    def command(self) -> str:
        return shlex.join(self.entrypoint)

    @property
    def forwarded(self) -> tuple[str, ...]:
        """Names of every variable the job gets."""
        return (*self.settings, *self.credentials)

    def runtime_env(self, environ: dict[str, str] | None = None) -> dict:
        """The job's runtime environment; the credentials' values from ``environ`` (default: this process's)."""
        source: Mapping[str, str] = os.environ if environ is None else environ
        env = {**self.settings, **{name: source[name] for name in self.credentials if source.get(name)}}
        runtime: dict[str, Any] = {"env_vars": env}
        if self.working_dir is not None:
            runtime.update(working_dir=str(self.working_dir), excludes=[".git"])
        return runtime


def jobs_address(address: str | None) -> str:
    """``address``, else ``$RAY_API_SERVER_ADDRESS``, else an http(s) ``$RAY_ADDRESS``, else
    :data:`DEFAULT_ADDRESS`; anything but an http(s) URL is refused."""
    if address is None:
        found = [os.environ[name] for name in ADDRESS_ENV if os.environ.get(name)]
        address = next((a for a in found if a.startswith(("http://", "https://"))), DEFAULT_ADDRESS)
    if not address.startswith(("http://", "https://")) or not urlsplit(address).hostname:
        raise ValueError(
            f"--address {address!r} is not accepted; accepted: the head's Jobs API (its dashboard), "
            "http://HOST:PORT, e.g. http://127.0.0.1:8265"
        )
    return address.rstrip("/")


def checkout() -> Path | None:
    """The source checkout this roft runs from (None for an installed package)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "orchestrator").is_dir() else None


def job_spec(spec: str, working_dir: Path | None) -> str:
    """How the job names ``spec``: its path below the uploaded working directory, or a bundled
    spec's name (``spec`` has been loaded, so it is one of the two or a file elsewhere)."""
    from search_spaces.spec import bundled_spec_names

    path = user_path(spec, "spec")
    if not path.is_file():
        return spec  # a bundled spec (load_spec found it by name)
    accepted = (
        f"accepted: a spec file below the working directory that the job uploads, or a bundled spec "
        f"({', '.join(bundled_spec_names())})"
    )
    if working_dir is None:
        raise ValueError(
            f"spec {spec!r} is a file of this machine, and the job uploads no working directory; "
            f"{accepted} (--working-dir DIR uploads DIR)"
        )
    try:
        relative = path.resolve().relative_to(working_dir.resolve())
    except ValueError:
        raise ValueError(
            f"spec {spec!r} lies outside the working directory that the job uploads ({working_dir}); {accepted}"
        ) from None
    if _git_ignores(working_dir, relative):
        raise ValueError(
            f"spec {spec!r} is listed by .gitignore, so the upload of {working_dir} leaves it out; "
            f"{accepted}, not ignored"
        )
    return relative.as_posix()


def _git_ignores(folder: Path, relative: Path) -> bool:
    try:
        return (
            subprocess.run(
                ["git", "-C", str(folder), "check-ignore", "-q", str(relative)], capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def job_store(location: str) -> str:
    """The store as the job names it: an absolute folder, or an object-storage URI without credentials."""
    if "://" in location:
        parts = urlsplit(location)
        keys = sorted(set(parse_qs(parts.query)) & set(URI_CREDENTIAL_KEYS))
        if parts.username or parts.password or keys:
            what = f"query option(s) {', '.join(keys)}" if keys else "user information (KEY:SECRET@)"
            raise ValueError(
                f"--store: the URI carries credentials ({what}), which the job's entry point would "
                f"show in Ray's logs; accepted: a URI without them, with the credentials in "
                f"{' / '.join(STORE_CREDENTIALS)}, which roft submit forwards to the job"
            )
        return location
    path = user_path(location, "store")
    if not path.is_absolute():
        raise ValueError(
            f"--store {location!r} is relative to this shell's folder, but the job runs in a temporary "
            "folder on the cluster; accepted: an absolute path that every node reaches (on one machine: "
            f'--store "$PWD/{location}"), or s3://bucket/prefix'
        )
    return str(path)


def _absolute(value: str) -> str:
    return str(user_path(value).absolute())


def build_submission(
    spec: str,
    store: str,
    sweep_args: list[str],
    *,
    address: str | None = None,
    data_root: str | None = None,
    working_dir: Path | None = None,
    job_id: str | None = None,
    credentials: bool = True,
    spec_name: str = "sweep",
) -> Submission:
    """The job of ``roft sweep SPEC --store STORE *sweep_args`` (``sweep_args``: options that are
    passed on as they are; paths among them are already absolute)."""
    from orchestrator.version import code_version

    location = job_store(store)
    settings = {}
    if data_root is not None or os.environ.get("ROFT_DATA"):
        settings["ROFT_DATA"] = _absolute(data_root if data_root is not None else os.environ["ROFT_DATA"])
    if os.environ.get("ROFT_CACHE"):
        settings["ROFT_CACHE"] = _absolute(os.environ["ROFT_CACHE"])
    version = code_version()
    if "unknown" not in version:
        settings[CODE_VERSION_ENV] = version
    forwarded: tuple[str, ...] = ()
    if "://" in location and credentials:
        forwarded = tuple(name for name in (*STORE_CREDENTIALS, *STORE_SETTINGS) if os.environ.get(name))
    entrypoint = (
        "python",
        "-m",
        "orchestrator",
        "sweep",
        job_spec(spec, working_dir),
        "--store",
        location,
        *sweep_args,
    )
    return Submission(
        address=jobs_address(address),
        job_id=job_id or default_job_id(spec_name),
        entrypoint=entrypoint,
        working_dir=working_dir,
        store=location,
        settings=settings,
        credentials=forwarded,
    )


def default_job_id(sweep: str) -> str:
    """``roft-<sweep>-<UTC time>-<4 hex>``: readable in ``ray job list``, unique per submission."""
    return f"roft-{sweep}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


# ---- talking to the cluster -----------------------------------------------------------------------


def token_at_hand() -> bool:
    """Whether Ray would find an authentication token here: ``$RAY_AUTH_TOKEN``, the file
    ``$RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    return user_path(os.environ.get("RAY_AUTH_TOKEN_PATH") or TOKEN_FILE, "$RAY_AUTH_TOKEN_PATH").is_file()


def use_token_at_hand() -> None:
    """As ``ray start`` does: with ``RAY_AUTH_MODE`` unset and a token at hand, this process sends it."""
    if os.environ.get("RAY_AUTH_MODE") is None and token_at_hand():
        os.environ["RAY_AUTH_MODE"] = "token"
        if "ray" in sys.modules:  # Ray reads its configuration once; read it again
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")


def auth_advice(address: str, refused: bool) -> str:
    """What to set when the cluster at ``address`` asks for a token (``refused``: it rejected the one sent)."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if refused:
        problem = "rejected this machine's authentication token (it is not the head's)"
    elif mode and mode != "token":
        problem = f"requires its authentication token, and RAY_AUTH_MODE={mode} here sends none"
    else:
        problem = "requires its authentication token, and this machine has none"
    return (
        f"the Ray cluster at {address} {problem}: copy the head's {TOKEN_FILE} to {TOKEN_FILE} here, or set "
        f"RAY_AUTH_TOKEN to it (or RAY_AUTH_TOKEN_PATH to its file)"
        + (", and unset RAY_AUTH_MODE or set it to token" if mode and mode != "token" else "")
        + "; Ray's own CLI (ray job logs, ray status) needs RAY_AUTH_MODE=token too"
    )


# Ray's client-side notices that say nothing to a roft user (the upload's progress, the default
# exclusion of .git and .venv, the log stream's close); its warnings about large files stay.
_QUIET_LOGGERS = {
    "ray._private.runtime_env.working_dir": logging.ERROR,
    "ray._private.runtime_env.packaging": logging.WARNING,
    "ray.dashboard.modules.dashboard_sdk": logging.WARNING,
    "ray.dashboard.modules.job.sdk": logging.WARNING,
}


def _client(address: str):
    """A :class:`JobSubmissionClient` of ``address``; a cluster that cannot be reached or refuses
    the request is a one-line :class:`RuntimeError` saying what to do."""
    use_token_at_hand()
    for name, level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as exc:
        raise RuntimeError(auth_advice(address, refused="403" in str(exc) or "Forbidden" in str(exc))) from None
    except ConnectionError as exc:
        raise RuntimeError(
            f"no Ray Jobs API answers at {address} ({exc}); start a head (`make cluster-up` on this "
            "machine) or give --address http://HEAD:PORT, the head's dashboard (8265 by default)"
        ) from None


def submit(submission: Submission) -> str:
    """Submit the job; returns its id."""
    from ray.exceptions import AuthenticationError

    client = _client(submission.address)
    try:
        return client.submit_job(
            entrypoint=submission.command, submission_id=submission.job_id, runtime_env=submission.runtime_env()
        )
    except AuthenticationError as exc:
        raise RuntimeError(auth_advice(submission.address, refused="403" in str(exc))) from None
    except RuntimeError as exc:  # the Jobs API refused the job (a taken id, a working directory too large)
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise RuntimeError(
            f"the Ray cluster at {submission.address} refused the job: {lines[-1] if lines else exc}"
        ) from None


def follow(address: str, job_id: str, out: TextIO) -> str:
    """Copy the job's log to ``out`` until the job ends; returns its final status (SUCCEEDED, FAILED, STOPPED)."""
    import asyncio

    client = _client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    asyncio.run(tail())
    status = str(client.get_job_status(job_id).value)
    while status not in TERMINAL:  # the log can end a moment before the status does
        time.sleep(0.5)
        status = str(client.get_job_status(job_id).value)
    return status


def follow_lines(submission: Submission) -> list[str]:
    """How to follow, check and stop the job, as commands to copy."""
    address = submission.address
    auth = "RAY_AUTH_MODE=token " if os.environ.get("RAY_AUTH_MODE") == "token" else ""
    return [
        f"  follow it:  {auth}ray job logs -f {submission.job_id} --address {address}",
        f"  progress:   roft status --store {shlex.quote(submission.store)}",
        f"  stop it:    {auth}ray job stop {submission.job_id} --address {address}",
    ]
