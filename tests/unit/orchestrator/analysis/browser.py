"""Headless Chromium for the report tests: a screenshot of a page and its DOM after rendering.

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). Each call starts its
own browser with a fresh profile under the test's folder and ends with it; pages are local files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed (apt-get install chromium); .ci/run installs it"
    return browser


def _command(profile: Path, height: int) -> list[str]:
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
            f"--window-size=1280,{height}"]


def screenshot(page: Path, png: Path, height: int = 2400) -> Path:
    """``png``: the page as Chromium draws it, 1280 pixels wide and ``height`` tall."""
    subprocess.run([*_command(png.parent / f".{png.stem}-profile", height), f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return png


def dom(page: Path) -> str:
    """The page's DOM after Chromium has rendered it."""
    profile = page.parent.parent / f".{page.parent.name}-dom-profile"
    return subprocess.run([*_command(profile, 1200), "--dump-dom", page.as_uri()], check=True, capture_output=True,
                          text=True, timeout=120).stdout


def ink(png: Path) -> float:
    """The share of the screenshot's pixels that are not (near) white: a blank page has ~0."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    return float((pixels.min(axis=2) < 0.9).mean())
