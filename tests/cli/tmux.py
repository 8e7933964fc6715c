"""A command in a tmux pane, for tests of what a terminal shows (``roft status --watch``).

Each :class:`Pane` runs its own tmux server on a private socket (``tmux -L <name>``, no
configuration file), started here and killed on exit; the command runs under ``bash -c`` followed
by ``echo EXIT=$?`` so that its exit status shows in the pane after it ends.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable


class Pane:
    def __init__(self, argv: list[str], width: int = 160, height: int = 40, cwd: str | None = None):
        tmux = shutil.which("tmux")
        assert tmux, "tmux is needed (apt-get install tmux); .ci/run installs it"
        self.tmux = [tmux, "-L", f"roft-test-{uuid.uuid4().hex[:12]}", "-f", "/dev/null"]
        script = f"{shlex.join(argv)}; echo EXIT=$?; sleep 600"
        self._run("new-session", "-d", "-s", "test", "-x", str(width), "-y", str(height),
                  *(["-c", cwd] if cwd else []), shlex.join(["bash", "-c", script]))

    def _run(self, *args: str) -> str:
        return subprocess.run([*self.tmux, *args], check=True, capture_output=True, text=True, timeout=30).stdout

    def capture(self) -> str:
        """The pane's visible text now, each line as printed (however the pane wrapped it)."""
        return self._run("capture-pane", "-p", "-J", "-t", "test")  # -J: wrapped lines joined

    def send(self, *keys: str) -> None:
        self._run("send-keys", "-t", "test", *keys)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The pane's text once ``predicate`` holds of it; AssertionError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        text = self.capture()
        while not predicate(text):
            if time.monotonic() > deadline:
                raise AssertionError(f"the pane never showed {what} within {timeout:.0f} s; it shows:\n{text}")
            time.sleep(0.5)
            text = self.capture()
        return text

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=30)

    def __enter__(self) -> Pane:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
