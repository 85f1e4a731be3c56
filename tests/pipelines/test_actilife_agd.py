"""ActiLife ``.agd`` epoch counts: a real file ActiLife 6.13.4 wrote, damaged and hostile files, and a
study ingesting and building its circadian table from AGD counts without keeping the wearer's
settings (name, date of birth)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.config import SourceConfig
from pipelines.ingest.readers import ReadError, read_raw
from tests.pipelines.conftest import files_holding, ingest_and_build_with

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "actigraph_counts" / "example5sec.agd"
TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000


def agd_source(timezone: str = "America/Chicago") -> SourceConfig:
    return SourceConfig(kind="activity_counts", pattern="raw/agd/*.agd", format="agd", timezone=timezone,
                        subject_pattern=r"^(?P<subject_id>S\d{4})_")


def copy_example(folder: Path, name: str = "S0001_wrist.agd") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(EXAMPLE, folder / name))


def execute(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as database:
        for statement in statements:
            database.execute(statement)


def test_a_real_actilife_file_is_read_as_vector_magnitude_counts_in_utc(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    before = path.read_bytes()

    raw = read_raw(path, agd_source())

    frame = raw.frame
    with sqlite3.connect(EXAMPLE) as agd:
        axes = np.array(agd.execute("SELECT axis1, axis2, axis3 FROM data ORDER BY dataTimestamp").fetchall())
    assert len(frame) == 36 and set(frame["epoch_s"]) == {5.0} and set(frame["subject_id"]) == {"S0001"}
    np.testing.assert_allclose(frame["activity_count"], np.sqrt(np.square(axes).sum(axis=1)))
    assert frame["activity_count"].iloc[0] == pytest.approx(np.sqrt(171**2 + 92**2 + 261**2))
    # 08:34 on the device's clock in June in Chicago (CDT, -05:00) is 13:34 UTC, as the .gt3x says.
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-06-13T13:34:00Z")
    assert set(np.diff(frame["timestamp"].to_numpy()).astype("timedelta64[s]").astype(int)) == {5}
    assert raw.unparsable_cells.sum() == 0
    assert raw.metadata["device_serial"] == "TAS1H52220588" and raw.metadata["activity_count"] == "vector magnitude"
    assert raw.metadata["software"] == "ActiLife 6.13.4"
    assert "example" not in str(raw.metadata)  # the settings' subject name is never read
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["S0001_wrist.agd"]


def test_a_single_axis_file_gives_axis1(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    execute(path, "ALTER TABLE data DROP COLUMN axis2", "ALTER TABLE data DROP COLUMN axis3")
    raw = read_raw(path, agd_source())
    assert raw.frame["activity_count"].iloc[:3].tolist() == [171.0, 253.0, 391.0]
    assert raw.metadata["activity_count"] == "axis1"


def test_an_epoch_without_a_count_loses_that_epoch_only(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    first = 638222420400000000
    execute(path, f"UPDATE data SET axis2 = NULL WHERE dataTimestamp = {first + 50_000_000}",
            f"UPDATE data SET axis3 = 'lots' WHERE dataTimestamp = {first + 100_000_000}")
    raw = read_raw(path, agd_source())
    assert np.flatnonzero(raw.unparsable_cells).tolist() == [1, 2]
    assert raw.frame["activity_count"].isna().tolist()[:4] == [False, True, True, False]
    assert len(raw.frame) == 36


def test_rows_out_of_order_are_put_in_time_order(tmp_path: Path) -> None:
    path = copy_example(tmp_path)
    execute(path, "CREATE TABLE shuffled AS SELECT * FROM data ORDER BY dataTimestamp DESC",
            "DELETE FROM data", "INSERT INTO data SELECT * FROM shuffled", "DROP TABLE shuffled")
    frame = read_raw(path, agd_source()).frame
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["activity_count"].iloc[0] == pytest.approx(np.sqrt(171**2 + 92**2 + 261**2))


SECOND_EPOCH = "dataTimestamp = 638222420450000000"
DAMAGE = {  # change -> the SQL that makes it
    "no data table": "DROP TABLE data",
    "no axis1": "ALTER TABLE data DROP COLUMN axis1",
    "epoch length": "UPDATE settings SET settingValue = 'five' WHERE settingName = 'epochlength'",
    "no epochs": "DELETE FROM data",
    "repeated epoch": f"INSERT INTO data SELECT * FROM data WHERE {SECOND_EPOCH}",
    "text time": f"UPDATE data SET dataTimestamp = 'noon' WHERE {SECOND_EPOCH}",
    "absurd time": f"UPDATE data SET dataTimestamp = 3155378975999999999 WHERE {SECOND_EPOCH}",
}


def damaged(tmp_path: Path, change: str) -> Path:
    path = copy_example(tmp_path)
    if change in DAMAGE:
        execute(path, DAMAGE[change])
    elif change == "truncated":
        path.write_bytes(EXAMPLE.read_bytes()[:3000])
    elif change == "a zip":
        path.write_bytes(b"PK\x03\x04" + bytes(500))
    return path


@pytest.mark.parametrize(("change", "reason"), [
    ("truncated", r"not a readable ActiLife AGD \(SQLite\) database: .*truncated or damaged"),
    ("no data table", r"no 'data' table: not an ActiLife AGD file \(it has .*settings"),
    ("no axis1", r"the 'data' table has no axis1 column"),
    ("epoch length", r"the settings' epochlength is 'five', not a whole number of seconds"),
    ("no epochs", r"the 'data' table holds no epochs"),
    ("repeated epoch", r"data rows 3 repeat the epoch start of the row before"),
    ("text time", r"data rows 2 have no integer dataTimestamp"),
    ("absurd time", r"data rows 2 have a dataTimestamp before 1980 or after 2199"),
    ("a zip", r"not an ActiLife .agd file: it starts with b'PK.* \(it looks like a zip archive"),
])
def test_a_damaged_agd_file_is_refused_with_the_reason(tmp_path: Path, change: str, reason: str) -> None:
    path = damaged(tmp_path, change)
    with pytest.raises(ReadError, match=rf"S0001_wrist.agd: {reason}"):
        read_raw(path, agd_source())


def test_a_file_name_without_a_subject_code_is_refused(tmp_path: Path) -> None:
    path = copy_example(tmp_path, "wrist.agd")
    with pytest.raises(ReadError, match=r"wrist.agd: no subject code in the file name .* subject name is not used"):
        read_raw(path, agd_source())


def test_a_study_builds_its_circadian_table_from_agd_counts_and_keeps_no_wearer_settings(tmp_path: Path) -> None:
    """Eight days of 60-s epochs in ActiLife's layout (the example file's schema and settings, its
    data replaced by a day-night rhythm), the wearer's name and date of birth in the settings:
    the ``circadian_counts`` table has the week's measures, and neither is in any file written."""
    path = copy_example(tmp_path / "study" / "raw" / "agd")
    start = pd.Timestamp("2024-03-04 00:00")
    minutes = np.arange(8 * 1440)
    hour = (minutes % 1440) / 60
    rng = np.random.default_rng(3)
    active = (hour >= 7) & (hour < 23)
    axis1 = np.where(active, rng.poisson(900, minutes.size), rng.poisson(5, minutes.size))
    ticks = (start.value // 100 + TICKS_AT_UNIX_EPOCH) + minutes.astype(np.int64) * 600_000_000
    with sqlite3.connect(path) as agd:
        agd.execute("DELETE FROM data")
        agd.executemany("INSERT INTO data (dataTimestamp, axis1, axis2, axis3, steps, lux) VALUES (?, ?, ?, ?, 0, 0)",
                        [(int(t), float(a), float(a) / 2, float(a) / 3) for t, a in zip(ticks, axis1, strict=True)])
        agd.execute("UPDATE settings SET settingValue = '60' WHERE settingName = 'epochlength'")
        agd.execute("UPDATE settings SET settingValue = 'Jane Doe' WHERE settingName = 'subjectname'")
        agd.execute("UPDATE settings SET settingValue = '1961-07-04' WHERE settingName = 'dateOfBirth'")
    tables = ingest_and_build_with(tmp_path, "S0001_wrist.agd", """
  actigraph_epochs:
    kind: activity_counts
    pattern: raw/agd/*.agd
    format: agd
    timezone: Europe/Brussels
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
""")
    rhythm = pd.read_parquet(tables / "circadian_counts.parquet")
    week = rhythm.dropna(subset=["interdaily_stability_counts_7d"])
    assert set(week["subject_id"]) == {"S0001"} and len(week) >= 2
    assert (week["interdaily_stability_counts_7d"] > 0.9).all()  # the same day, eight times
    assert (week["m10_mean_7d_counts_per_min"] > 20 * week["l5_mean_7d_counts_per_min"]).all()
    # The active day is 07:00-23:00 on the device clock (Brussels, +01:00): M10 starts in it.
    assert week["m10_onset_counts_7d_min"].between(7 * 60, 13 * 60).all()

    assert not files_holding(tmp_path, b"Jane Doe", b"1961-07-04")
