"""Published reference recordings and implementations read from their publishers' wheels, which
`make test` downloads into .venv/reference/ (pinned versions): files whose licence lets us use
them in tests but not copy them into this repository or depend on them (pyActigraphy's examples
and agcounts' code are GPL-3).

Each file is checked against the SHA-256 it had when its published values were taken.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import zipfile
from pathlib import Path
from types import ModuleType

REFERENCE = Path(__file__).resolve().parents[1] / ".venv" / "reference"

PYACTIGRAPHY_WHEEL = "pyActigraphy-1.2.2-py3-none-any.whl"
"""pyActigraphy 1.2.2 (G. Hammad et al., https://github.com/ghammad/pyActigraphy, GPL-3)."""

AGCOUNTS_WHEEL = "agcounts-0.2.6-py3-none-any.whl"
"""agcounts 0.2.6 (ActiGraph's Python description of its count method, https://github.com/actigraph/agcounts,
GPL-3): a second implementation to check ours against, imported in tests only."""

WHEEL_SHA256 = {AGCOUNTS_WHEEL: "bce7a2b35b0357397d42bc1989f4364a109a6634c931cbdd34497a3b22a6069c"}

SHA256 = {
    "pyActigraphy/tests/data/example_01.AWD": "7a18100d3c883049e0a8feda387859414b031b01cb129c74b749fd3f8dc13864",
    "pyActigraphy/tests/data/example_02.AWD": "5392d264ad03cd932a51dca2cd65e8864c9ddfb05a4e3ec3c6428ae988baf5b0",
    "pyActigraphy/tests/data/example_03.AWD": "765781ede2ccefd01b7e396ff09596caf780e939d32aa2e9c87f718ee87d79ca",
    "pyActigraphy/tests/data/example_04.AWD": "f6d9f869f214b20b19a4a2718a1115aaa4ccc942fb46554ffd9a4509e2c2cc30",
    "pyActigraphy/tests/data/example_05.AWD": "0c728a780b2f5ac9ac3ed7a25b445485231452098bcaaf67e78458016c21fa24",
}


def _wheel(wheel: str) -> Path:
    path = REFERENCE / wheel
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `make test` downloads it (pip download --no-deps "
                                f"{wheel.split('-')[0]}=={wheel.split('-')[1]} --dest {REFERENCE})")
    return path


def reference_module(wheel: str, module: str) -> ModuleType:
    """``module`` imported from ``wheel`` under .venv/reference/ (a pure-Python wheel is a zip that
    Python imports from), the wheel checked against its SHA-256; never installed."""
    path = _wheel(wheel)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256[wheel]:
        raise ValueError(f"{path} has SHA-256 {digest}, not the {WHEEL_SHA256[wheel]} of the published wheel")
    if str(path) not in sys.path:
        sys.path.append(str(path))  # appended: nothing installed is shadowed
    return importlib.import_module(module)


def reference_file(wheel: str, member: str) -> bytes:
    """The bytes of ``member`` in ``wheel`` under .venv/reference/, checked against its SHA-256."""
    path = _wheel(wheel)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[member]:
        raise ValueError(f"{member} in {path} has SHA-256 {digest}, not the {SHA256[member]} of the published file")
    return data
