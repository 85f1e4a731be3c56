"""Debian's Chromium, headless, as the issue runs it: the one place that finds it and sets its flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def headless_chromium_command(profile: Path, *arguments: str) -> list[str]:
    """The command line of a headless Chromium with a profile of the caller's own; skips when there is none."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Debian's chromium is not installed: `apt-get install chromium` (`make test` installs it)")
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *arguments]
