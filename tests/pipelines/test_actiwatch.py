"""Actiwatch ``.AWD`` activity counts: every Actiwatch model's sample file of pyActigraphy, its
published circadian values through our reader, damaged files, and a study ingesting and building
its circadian table from counts without keeping the header's identity."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.biomarkers import circadian
from pipelines.config import SourceConfig
from pipelines.ingest.readers import ReadError, read_raw
from tests.pipelines.conftest import files_holding, ingest_and_build_with
from tests.reference_data import PYACTIGRAPHY_WHEEL, REFERENCE, reference_file

# pyActigraphy 1.2.2's sample file of each Actiwatch model (its tests' data, GPL-3: read from the
# wheel, never copied): model letter of the serial number, epoch length, epochs.
SAMPLES = {
    "test_sample_aw4.AWD": ("Actiwatch-4", 60, 31_854),
    "test_sample_aw7.AWD": ("Actiwatch-7", 15, 30_623),
    "test_sample_awi.AWD": ("Actiwatch-Insomnia", 60, 6_162),
    "test_sample_awl.AWD": ("Actiwatch-L", 60, 12_774),
    "test_sample_awlp.AWD": ("Actiwatch-L-Plus", 60, 10_103),
    "test_sample_awmk2.AWD": ("Actiwatch-Mini", 30, 29_992),
    "test_sample_aws.AWD": ("Actiwatch-S", 60, 1_521),
    "test_sample_awt.AWD": ("Actiwatch-T", 60, 3_862),
}


def awd_source(timezone: str = "UTC") -> SourceConfig:
    return SourceConfig(kind="activity_counts", pattern="raw/awd/*.AWD", format="awd", timezone=timezone,
                        subject_pattern=r"^(?P<subject_id>[A-Za-z0-9]+)_")


def sample_bytes(name: str) -> bytes:
    """A pyActigraphy sample file, straight from the pinned wheel (SHA-256 unchecked: these give
    no published values, only the layouts of each model, which the assertions state)."""
    path = REFERENCE / PYACTIGRAPHY_WHEEL
    if not path.is_file():
        reference_file(PYACTIGRAPHY_WHEEL, "pyActigraphy/tests/data/example_01.AWD")  # raises, saying how to fetch it
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"pyActigraphy/tests/data/{name}")


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("latin-1"))
    return path


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_actiwatch_models_sample_file_is_read(tmp_path: Path, name: str) -> None:
    model, epoch_s, epochs = SAMPLES[name]
    content = sample_bytes(name)
    lines = content.decode("latin-1").splitlines()
    path = write(tmp_path / f"S0001_{name}", content)

    raw = read_raw(path, awd_source("Europe/Brussels"))

    frame = raw.frame
    assert (raw.metadata["device_model"], raw.metadata["epoch_s"]) == (model, str(epoch_s))
    assert len(frame) == epochs and set(frame["epoch_s"]) == {epoch_s}
    # The count is each epoch line's first number, whatever follows it (light, marker).
    expected = [float(line.split()[0]) for line in lines[7:] if line.strip()]
    np.testing.assert_array_equal(frame["activity_count"].to_numpy(), expected)
    assert raw.unparsable_cells.sum() == 0
    steps = np.diff(frame["timestamp"].to_numpy()).astype("timedelta64[s]").astype(int)
    assert set(steps) == {epoch_s}
    # The start is the header's local time on the watch's clock, in UTC (Brussels: +1 h or +2 h).
    local_start = pd.Timestamp(pd.to_datetime(f"{lines[1].strip()} {lines[2].strip()}"))
    offset = local_start.tz_localize("Europe/Brussels").utcoffset()
    assert frame["timestamp"].iloc[0] == (local_start - offset).tz_localize("UTC")
    assert set(frame["subject_id"]) == {"S0001"}


def test_published_circadian_values_come_out_of_the_reader() -> None:
    """pyActigraphy's ``example_01.AWD`` (SHA-256 checked) read by our reader, not by the test:
    binarized above 4 counts, its documentation's IS 0.527656245354158 and IV 0.32913524895082263
    (docs/source/pyActigraphy-Non-parametric-variables.ipynb, pyActigraphy 1.2.2), and RA
    0.7576503909857768, with pyActigraphy's conventions (``definition="pyactigraphy"``)."""
    content = reference_file(PYACTIGRAPHY_WHEEL, "pyActigraphy/tests/data/example_01.AWD")
    with tempfile.TemporaryDirectory() as folder:
        raw = read_raw(write(Path(folder) / "S0001_example_01.AWD", content), awd_source())
    assert raw.frame["activity_count"].sum() == 2_596_555
    minutes = circadian.counts_per_minute(raw.frame)
    counts = pd.Series(minutes["activity"].to_numpy(), index=pd.DatetimeIndex(minutes["timestamp"]))
    active = circadian.binarized(counts, 4)
    bins = circadian.hourly_bins(active, 60, "pyactigraphy")
    assert circadian.interdaily_stability(bins, "pyactigraphy") == pytest.approx(0.527656245354158, abs=1e-6)
    assert circadian.intradaily_variability(bins, "pyactigraphy") == pytest.approx(0.32913524895082263, abs=1e-6)
    assert circadian.least_and_most_active(active).relative_amplitude == pytest.approx(0.7576503909857768, abs=1e-6)


HEADER = "Jane Doe\r\n04-Mar-2024\r\n00:00\r\n 4 \r\n57\r\nV664055\r\nF\r\n"


@pytest.mark.parametrize(("content", "reason"), [
    ("Jane Doe\r\n04-Mar-2024\r\n00:00\r\n", r"truncated Actiwatch AWD file: 3 lines, the header alone has 7"),
    (HEADER.replace(" 4 ", " 7 ") + "12\r\n", r"line 4 holds the epoch code '7', not one of the AWD codes \(1 = 15 s"),
    (HEADER.replace("04-Mar-2024", "2024-03-04") + "12\r\n",
     r"lines 2 and 3 should hold the start date and time .* '2024-03-04' and '00:00'"),
    ("", r"the file is empty \(0 bytes\)"),
    (b"PK\x03\x04" + bytes(200), r"not a awd file: expected UTF-8 text, found binary content \(it looks like a zip"),
])
def test_a_damaged_awd_file_is_refused_naming_the_line(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = write(tmp_path / "S0001_watch.AWD", content)
    with pytest.raises(ReadError, match=rf"S0001_watch.AWD: {reason}"):
        read_raw(path, awd_source())


def test_an_unreadable_count_loses_its_epoch_only(tmp_path: Path) -> None:
    body = ["10", "20 , 3.5 M", "x1", "", "-4", "50", "60", "", ""]
    path = write(tmp_path / "S0001_watch.AWD", HEADER + "\r\n".join(body))
    raw = read_raw(path, awd_source())
    counts = raw.frame["activity_count"].to_numpy()
    np.testing.assert_array_equal(counts, [10, 20, np.nan, np.nan, np.nan, 50, 60])  # trailing blank lines: no epochs
    np.testing.assert_array_equal(raw.unparsable_cells, [0, 0, 1, 1, 1, 0, 0])
    assert raw.frame["timestamp"].iloc[-1] == pd.Timestamp("2024-03-04T00:06:00Z")  # the later epochs keep their time


def test_a_file_name_without_a_subject_code_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "watch.AWD", HEADER + "12\r\n")
    with pytest.raises(ReadError, match=r"watch.AWD: no subject code in the file name by the source's subject_pattern"):
        read_raw(path, awd_source())


def test_a_study_builds_its_circadian_table_from_awd_counts_and_keeps_no_identity(tmp_path: Path) -> None:
    """Eight days of a real recording (example_01's counts, re-dated) through ingest and build:
    the ``circadian_counts`` table has the week's measures, and the watch's identity line
    (here a name) is in no file the platform wrote."""
    counts = reference_file(PYACTIGRAPHY_WHEEL, "pyActigraphy/tests/data/example_01.AWD").decode("ascii")
    epochs = counts.splitlines()[7:7 + 8 * 1440]
    write(tmp_path / "study" / "raw" / "awd" / "S0001_watch.AWD", HEADER + "\r\n".join(epochs) + "\r\n")
    tables = ingest_and_build_with(tmp_path, "S0001_watch.AWD", """
  actiwatch:
    kind: activity_counts
    pattern: raw/awd/*.AWD
    format: awd
    timezone: Europe/Brussels
    subject_pattern: '^(?P<subject_id>S\\d{4})_'
""")
    rhythm = pd.read_parquet(tables / "circadian_counts.parquet")
    assert set(rhythm["subject_id"]) == {"S0001"}
    week = rhythm.dropna(subset=["interdaily_stability_counts_7d"])
    assert len(week) >= 2 and week["circadian_counts_valid_days_7d_count"].min() >= 5
    assert week["interdaily_stability_counts_7d"].between(0, 1).all()
    assert (week["m10_mean_7d_counts_per_min"] > week["l5_mean_7d_counts_per_min"]).all()

    assert not files_holding(tmp_path, b"Jane Doe")


def test_epoch_length_and_vendor_layout_are_checked_at_load() -> None:
    with pytest.raises(ValueError, match=r"epoch_s is for activity_counts sources in csv or parquet, not minute_wea"):
        SourceConfig(kind="minute_wearable", pattern="raw/*.csv", format="csv", epoch_s=60)
    with pytest.raises(ValueError, match=r"format 'awd' reads its own columns, units and timestamps; remove columns"):
        SourceConfig(kind="activity_counts", pattern="raw/*.AWD", format="awd", columns={"activity_count": "x"})
    with pytest.raises(ValueError, match=r"format 'awd' cannot hold minute_wearable data"):
        SourceConfig(kind="minute_wearable", pattern="raw/*.AWD", format="awd")


def test_csv_counts_take_the_sources_epoch_length(tmp_path: Path) -> None:
    path = write(tmp_path / "S0001_counts.csv", "time,axis1\n2024-03-04T00:00:00Z,12\n2024-03-04T00:01:00Z,40\n")
    source = SourceConfig(kind="activity_counts", pattern="*.csv", format="csv", epoch_s=60,
                          columns={"timestamp": "time", "activity_count": "axis1"},
                          subject_pattern=r"^(?P<subject_id>S\d{4})_")
    frame = read_raw(path, source).frame
    assert frame[["subject_id", "activity_count", "epoch_s"]].values.tolist() == [["S0001", 12.0, 60.0],
                                                                                   ["S0001", 40.0, 60.0]]
