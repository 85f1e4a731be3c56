"""What computing one subject's features gives back, whichever engine computed it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class SubjectResult:
    """One subject's feature rows (table name -> frame), or the traceback of its failure."""

    subject_id: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    error: str | None = None
