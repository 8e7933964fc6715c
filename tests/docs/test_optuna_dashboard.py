"""The optuna-dashboard command of docs/guide.md shows roft's alpha-search studies.

The command is taken from the guide (its one ``sh`` block that names optuna-dashboard) and run as
written, on another port (a free one) and in a folder holding ``studies.journal``: a JournalStorage
file where roft's alpha search (:func:`trainables.methods.alpha_search.search_alphas`, as a search
trial runs it with ``--optuna-storage``) has put a study of 5 points. The dashboard is on
loopback; its API must list that study with its 5 trials.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.cluster import free_port

REPO = Path(__file__).resolve().parents[2]
SH_BLOCK = re.compile(r"^```sh[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def documented_command() -> list[str]:
    blocks = [b for b in SH_BLOCK.findall((REPO / "docs" / "guide.md").read_text()) if "optuna-dashboard" in b]
    assert len(blocks) == 1, "docs/guide.md should hold one sh block with the optuna-dashboard command"
    lines = [line for line in blocks[0].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0], comments=True)


def test_the_documented_dashboard_lists_roft_s_studies(tmp_path):
    if shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("optuna-dashboard is not installed: `make setup` installs it (the dev extra holds the "
                    "dashboard extra)")
    from trainables.methods.alpha_search import open_storage, search_alphas

    argv = documented_command()
    assert argv[:2] == ["optuna-dashboard", "studies.journal"] and argv[argv.index("--host") + 1] == "127.0.0.1"
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)

    study = "wise-ft:0123456789abcdef01234567:search_seed=0"
    best, _, points = search_alphas(lambda alphas: (1.0 - (alphas[0] - 0.3) ** 2, 0.5), groups=1, n_trials=5,
                                    seed=0, direction="maximize", study_name=study,
                                    storage=open_storage(str(tmp_path / "studies.journal")))
    assert len(points) == 5

    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / argv[0]), *argv[1:]], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                              start_new_session=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert studies is not None, server.communicate(timeout=10)[0] if server.poll() is not None else "no answer"
        [listed] = studies
        assert listed["study_name"] == study and listed["directions"] == ["maximize"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{listed['study_id']}", timeout=10) as response:
            detail = json.load(response)
        assert len(detail["trials"]) == 5 and all(t["state"] == "Complete" for t in detail["trials"])
        assert [t["values"] for t in detail["best_trials"]] == [[pytest.approx(best.val)]]
        assert {a["key"]: a["value"] for a in detail["trials"][0]["user_attrs"]} == {"test": "0.5"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
