"""Full-content digests of training frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.digests import frame_sha256


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "subject_id": ["S2", "S1", "S3"],
        "event_timestamp": pd.to_datetime(["2024-03-02", "2024-03-01", "2024-03-03"], utc=True),
        "steps": [1000.0, np.nan, 3000.0],
        "label": [1, 0, 1],
        "reason": [None, "wear time 410 min < 600 min", None],
    })


def test_the_digest_ignores_row_and_column_order_and_null_spelling():
    base = frame_sha256(frame(), sort_by=["subject_id", "event_timestamp"])
    shuffled = frame().iloc[[2, 0, 1], ::-1]
    assert frame_sha256(shuffled, sort_by=["subject_id", "event_timestamp"]) == base
    assert frame_sha256(frame().assign(steps=frame()["steps"].astype("Float64")),
                        sort_by=["subject_id", "event_timestamp"]) == base
    assert len(base) == 64


def test_every_value_counts_including_rows_past_ten_thousand():
    big = pd.DataFrame({"subject_id": [f"S{k:05d}" for k in range(20_000)], "value": np.arange(20_000.0)})
    changed = big.copy()
    changed.loc[19_999, "value"] = -1.0  # MLflow's sampled digest would not see this row
    assert frame_sha256(big) != frame_sha256(changed)
    for column, value in (("steps", 1000.5), ("reason", "x"), ("label", 0)):
        other = frame()
        other.loc[0, column] = value
        assert frame_sha256(other) != frame_sha256(frame()), column


def test_a_null_is_not_a_zero_and_times_are_compared_in_utc():
    zero = frame().assign(steps=[1000.0, 0.0, 3000.0])
    assert frame_sha256(zero) != frame_sha256(frame())
    local = frame().assign(event_timestamp=frame()["event_timestamp"].dt.tz_convert("Europe/Paris"))
    assert frame_sha256(local) == frame_sha256(frame())


def test_unsupported_values_are_refused_with_the_column_named():
    with pytest.raises(ValueError, match="'blob'.*bytes"):
        frame_sha256(frame().assign(blob=[b"a", b"b", b"c"]))
    with pytest.raises(ValueError, match="no column"):
        frame_sha256(frame(), sort_by=["patient"])
