"""The batches a suite runs on: field names of the raw file, canonical rows, per-second aggregates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from validation.batches import file_batch, normalise_field, rows_batch, seconds_batch
from validation.schemas import SourceKind

START = pd.Timestamp("2024-03-04T08:00:00Z")


def minutes(*offsets: float) -> list[pd.Timestamp]:
    return [START + pd.Timedelta(minutes=m) for m in offsets]


def assert_steps(batch: pd.DataFrame, expected: list[float]) -> None:
    np.testing.assert_array_equal(batch["seconds_since_latest_earlier"].to_numpy(), np.array(expected, dtype=float))


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Patient Name", "patient_name"),
        ("E-mail", "e_mail"),
        ("PATIENT_NAME", "patient_name"),
        ("patient-name", "patient_name"),
        ("  Date of Birth (DOB) ", "date_of_birth_dob"),
        ("HR [bpm]", "hr_bpm"),
        ("subject_id", "subject_id"),
        ("SpO2 %", "spo2"),
    ],
)
def test_normalise_field(raw, normalised):
    assert normalise_field(raw) == normalised


def test_file_batch_has_one_row_per_field_and_the_subject_once():
    batch = file_batch(["Time", "Accel X (g)", "Accel Y (g)"], "S0001")

    assert batch["field"].tolist() == ["time", "accel_x_g", "accel_y_g"]
    # Once, so an unknown subject is one failure, not one per field.
    assert batch["subject_id"].tolist() == ["S0001", None, None]
    assert batch.index.equals(pd.RangeIndex(3))


def test_file_batch_without_a_subject():
    batch = file_batch(["subject_id", "Patient Name"], None)

    assert batch["field"].tolist() == ["subject_id", "patient_name"]
    assert batch["subject_id"].isna().all()


def test_file_batch_of_a_file_without_fields_still_has_a_row():
    # A file with no header still gets checked for its subject.
    batch = file_batch([], "S0001")

    assert batch["field"].tolist() == [""]
    assert batch["subject_id"].tolist() == ["S0001"]


def test_rows_batch_step_is_nan_on_the_first_row_zero_for_a_duplicate_negative_for_a_step_back():
    frame = pd.DataFrame({
        "subject_id": "S0001",
        "timestamp": minutes(0, 1, 1, 3, 2),
        "heart_rate_bpm": [70.0, 71, 71, 72, 73],
    })

    batch = rows_batch(frame)

    assert_steps(batch, [np.nan, 60, 0, 120, -60])


def test_rows_batch_step_is_measured_from_the_latest_earlier_time_not_the_previous_row():
    frame = pd.DataFrame({"subject_id": "S0001", "timestamp": minutes(0, 10, 5, 7, 11)})

    batch = rows_batch(frame)

    # 5 and 7 both lie before 10, the latest time seen so far; 11 is one minute after it.
    assert_steps(batch, [np.nan, 600, -300, -180, 60])


def test_rows_batch_flags_every_row_of_a_file_sent_twice():
    once = pd.DataFrame({"subject_id": "S0001", "timestamp": minutes(0, 1, 2, 3, 4, 5)})
    twice = pd.concat([once, once], ignore_index=True)

    batch = rows_batch(twice)

    step = batch["seconds_since_latest_earlier"]
    assert (step.iloc[1:6] > 0).all()
    assert (step.iloc[6:] <= 0).all()  # all six repeated rows, not just the first
    assert step.iloc[6:].tolist() == [-300, -240, -180, -120, -60, 0]


def test_rows_batch_steps_are_per_subject_so_interleaved_subjects_do_not_interfere():
    frame = pd.DataFrame({
        "subject_id": ["A", "B", "A", "B", "A", "B"],
        "timestamp": minutes(10, 0, 11, 1, 12, 1),
    })

    batch = rows_batch(frame)

    # B's times lie before A's, yet only B's repeated minute is flagged.
    assert_steps(batch, [np.nan, np.nan, 60, 60, 60, 0])


def test_rows_batch_without_subject_column_treats_the_file_as_one_subject():
    frame = pd.DataFrame({"timestamp": minutes(0, 0, -1), "ecg_mv": [0.1, 0.2, 0.3]})

    batch = rows_batch(frame)

    assert_steps(batch, [np.nan, 0, -60])


def test_rows_batch_a_missing_time_does_not_hide_a_step_back_on_the_next_row():
    # The latest time among the subject's earlier rows is 00:02 whatever the missing row held,
    # so the row at 00:01 goes back in time by a minute.
    frame = pd.DataFrame({
        "subject_id": "S0001",
        "timestamp": [START, START + pd.Timedelta(minutes=2), pd.NaT, START + pd.Timedelta(minutes=1)],
        "rr_interval_ms": 800.0,
    })

    batch = rows_batch(frame)

    assert batch["seconds_since_latest_earlier"].iloc[3] == -60


def test_rows_batch_counts_unparsable_cells_per_row():
    frame = pd.DataFrame({"subject_id": "S0001", "timestamp": minutes(0, 1, 2)})

    assert rows_batch(frame)["unparsable_cells"].tolist() == [0, 0, 0]
    assert rows_batch(frame, np.array([0, 2, 0]))["unparsable_cells"].tolist() == [0, 2, 0]


def test_rows_batch_of_a_frame_without_timestamps_has_no_step():
    frame = pd.DataFrame({"subject_id": ["S1", "S2"], "sex": ["F", "M"]})

    batch = rows_batch(frame)

    assert "seconds_since_latest_earlier" not in batch
    assert batch[["subject_id", "sex"]].equals(frame)


def test_rows_batch_does_not_modify_its_input():
    frame = pd.DataFrame({
        "subject_id": ["A", "B", "A"],
        "timestamp": minutes(1, 0, 0),
        "heart_rate_bpm": [70.0, 80.0, 90.0],
    })
    before = frame.copy(deep=True)

    batch = rows_batch(frame, np.array([1, 0, 0]))

    pd.testing.assert_frame_equal(frame, before)
    assert list(frame.columns) == ["subject_id", "timestamp", "heart_rate_bpm"]
    assert list(batch.columns) == ["subject_id", "timestamp", "heart_rate_bpm",
                                   "seconds_since_latest_earlier", "unparsable_cells"]


def accelerometry_frame(seconds: int, fs_hz: int = 50) -> pd.DataFrame:
    n = seconds * fs_hz
    times = START + pd.to_timedelta(np.arange(n) / fs_hz, unit="s")
    return pd.DataFrame({
        "timestamp": times,
        "accel_x_g": np.zeros(n, dtype=np.float32),
        "accel_y_g": np.zeros(n, dtype=np.float32),
        "accel_z_g": np.ones(n, dtype=np.float32),
        "gyro_x_deg_s": np.full(n, 500.0, dtype=np.float32),  # not an aggregated signal
    })


def test_seconds_batch_of_accelerometry():
    frame = accelerometry_frame(4)
    frame.loc[60, "accel_y_g"] = np.nan
    frame.loc[110, "accel_x_g"] = -2.5

    batch = seconds_batch(SourceKind.ACCELEROMETRY, frame)

    assert list(batch.columns) == ["second", "samples", "samples_full_second", "non_increasing",
                                   "accel_g_min", "accel_g_max", "accel_g_nan",
                                   "accel_x_g_nan", "accel_y_g_nan", "accel_z_g_nan", "gravity_estimate_g",
                                   "corrupt_samples", "corrupt_blocks"]
    assert batch["second"].tolist() == [START + pd.Timedelta(seconds=s) for s in range(4)]
    assert batch["samples"].tolist() == [50, 50, 50, 50]
    np.testing.assert_array_equal(batch["samples_full_second"], [np.nan, 50, 50, np.nan])
    assert batch["accel_g_min"].tolist() == [0.0, 0.0, -2.5, 0.0]
    assert batch["accel_g_max"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert batch["accel_g_nan"].tolist() == [0, 1, 0, 0]
    assert batch["accel_y_g_nan"].tolist() == [0, 1, 0, 0]
    assert batch["accel_x_g_nan"].tolist() == [0, 0, 0, 0]
    gravity = batch["gravity_estimate_g"].to_numpy()
    assert np.isnan(gravity[1])
    np.testing.assert_allclose(gravity[[0, 3]], 1.0, rtol=1e-6)


def test_seconds_batch_of_ecg():
    n = 3 * 250
    frame = pd.DataFrame({
        "timestamp": START + pd.to_timedelta(np.arange(n) / 250, unit="s"),
        "ecg_mv": np.sin(np.arange(n) / 10).astype(np.float32),
    })
    frame.loc[[300, 301], "ecg_mv"] = np.nan
    frame.loc[600, "ecg_mv"] = 11.0

    batch = seconds_batch(SourceKind.ECG, frame)

    assert list(batch.columns) == ["second", "samples", "samples_full_second", "non_increasing",
                                   "ecg_mv_min", "ecg_mv_max", "ecg_mv_nan", "corrupt_samples", "corrupt_blocks"]
    assert batch["samples"].tolist() == [250, 250, 250]
    assert batch["ecg_mv_nan"].tolist() == [0, 2, 0]
    assert batch["ecg_mv_max"].tolist()[2] == 11.0
    assert batch["ecg_mv_max"].tolist()[0] < 1.0


def test_seconds_batch_counts_a_repeated_sample():
    frame = accelerometry_frame(3)
    frame = pd.concat([frame.iloc[:80], frame.iloc[79:]], ignore_index=True)  # sample 79 twice

    batch = seconds_batch(SourceKind.ACCELEROMETRY, frame)

    assert batch["samples"].tolist() == [50, 51, 50]
    assert batch["non_increasing"].tolist() == [0, 1, 0]
