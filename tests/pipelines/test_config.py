"""The study configuration: ``load_study``, ``StudyConfig`` and ``confine``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from features.settings import BiomarkerSettings
from pipelines.config import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    CheckName,
    ConfigError,
    Severity,
    SourceConfig,
    StudyConfig,
    confine,
    load_study,
    load_yaml,
)

DEMO_STUDY = Path(__file__).resolve().parents[2] / "studies" / "demo" / "study.yaml"


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root holding the demo study's subjects and endpoints files (their content is not read)."""
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "subjects.csv").write_text("subject_id\nS0001\n")
    (root / "raw" / "endpoints.csv").write_text("subject_id\nS0001\n")
    return root


def demo_raw() -> dict:
    return yaml.safe_load(DEMO_STUDY.read_text(encoding="utf-8"))


def write_study(tmp_path: Path, change: Callable[[dict], object] | None = None) -> Path:
    """The demo study.yaml, changed by ``change``, written to ``tmp_path/study.yaml``."""
    raw = demo_raw()
    if change is not None:
        change(raw)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path, data_root: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_study(path, data_root=data_root)
    return str(excinfo.value)


# --- the demo study ---------------------------------------------------------------------------


def test_demo_study_loads_when_its_enrollment_and_endpoint_files_exist(data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)

    assert isinstance(config, StudyConfig)
    assert config.study_id == "demo"
    assert config.data_root == data_root.resolve()
    assert config.subjects.columns == {"site_id": "site", "enrollment_date": "enrolled_on"}
    assert set(config.sources) >= {"minute_wearable", "wrist_accel", "axivity", "vitals", "labs_fhir"}
    axivity = config.sources["axivity"]
    assert axivity.format == "cwa"
    assert axivity.sampling_rate_hz == 100
    assert axivity.timezone == "Europe/London"
    assert config.sources["wrist_accel"].units == {"acceleration": "m/s^2"}
    assert config.resolve("raw/subjects.csv") == (data_root / "raw" / "subjects.csv").resolve()


def test_relative_data_root_is_taken_from_the_yaml_folder(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw.update(data_root="data"))
    assert load_study(path).data_root == data_root.resolve()


def test_missing_data_root_folder_is_named(tmp_path: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw.update(data_root=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="data_root: folder .*missing does not exist") as excinfo:
        load_study(path)
    assert str(path) in str(excinfo.value)


# --- unknown keys and wrong types -----------------------------------------------------------------


def test_unknown_top_level_key_is_named_with_the_file(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw.update(catalogue_url="sqlite://"))
    message = load_error(path, data_root)
    assert str(path) in message
    assert "catalogue_url: unknown key" in message


def test_unknown_key_inside_a_source_is_named_by_its_full_path(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(colums={"timestamp": "t"}))
    message = load_error(path, data_root)
    assert str(path) in message
    assert "sources.vitals.colums: unknown key" in message


def test_every_offending_key_is_reported_at_once(tmp_path: Path, data_root: Path) -> None:
    def change(raw: dict) -> None:
        raw["colour"] = "blue"
        raw["sources"]["ecg"]["sampling_rate_hz"] = "fast"

    message = load_error(write_study(tmp_path, change), data_root)
    assert "colour" in message
    assert "sources.ecg.sampling_rate_hz" in message


def test_wrong_type_names_the_key(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["axivity"].update(sampling_rate_hz="fast"))
    message = load_error(path, data_root)
    assert str(path) in message
    assert "sources.axivity.sampling_rate_hz" in message
    assert "number" in message


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_study(path)


def test_missing_configuration_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="cannot read") as excinfo:
        load_study(path)
    assert str(path) in str(excinfo.value)


# --- files and paths ------------------------------------------------------------------------------


def test_missing_subjects_file_names_the_key_and_the_file(tmp_path: Path, data_root: Path) -> None:
    (data_root / "raw" / "subjects.csv").unlink()
    message = load_error(DEMO_STUDY, data_root)
    assert str(DEMO_STUDY) in message
    assert "subjects.path" in message
    assert "raw/subjects.csv" in message
    assert "endpoints.path" not in message


def test_subjects_path_outside_the_data_root_is_refused(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "outside.csv").write_text("subject_id\n")  # exists, but outside the root
    path = write_study(tmp_path, lambda raw: raw["subjects"].update(path="../outside.csv"))
    message = load_error(path, data_root)
    assert "subjects.path" in message
    assert "outside the study data root" in message


@pytest.mark.parametrize("pattern", ["../elsewhere/*.csv", "raw/../../elsewhere/*.csv", "/etc/*.csv"])
def test_pattern_escaping_the_data_root_is_refused(tmp_path: Path, data_root: Path, pattern: str) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(pattern=pattern))
    message = load_error(path, data_root)
    assert "sources.vitals.pattern" in message
    assert "must be relative" in message


def test_confine_accepts_a_path_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    assert confine(tmp_path, "raw/a.csv") == tmp_path.resolve() / "raw" / "a.csv"
    assert confine(tmp_path, "raw/../raw/a.csv") == tmp_path.resolve() / "raw" / "a.csv"  # stays inside
    assert confine(tmp_path, tmp_path / "raw" / "a.csv") == tmp_path.resolve() / "raw" / "a.csv"


@pytest.mark.parametrize("relative", ["../x", "raw/../../x", "/etc/passwd"])
def test_confine_refuses_paths_outside_the_root(tmp_path: Path, relative: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ConfigError, match="outside the study data root"):
        confine(root, relative)


def test_confine_refuses_an_absolute_path_to_a_sibling_with_the_same_prefix(tmp_path: Path) -> None:
    # A string-prefix check would let /tmp/root-evil pass for /tmp/root.
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ConfigError):
        confine(root, tmp_path / "root-evil" / "x.csv")


def test_confine_refuses_a_symlink_inside_the_root_pointing_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("x\n")
    os.symlink(outside, root / "link")
    with pytest.raises(ConfigError, match="outside the study data root"):
        confine(root, "link/secret.csv")


def test_study_resolve_refuses_escape(data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)
    with pytest.raises(ConfigError):
        config.resolve("../../etc/passwd")


# --- safe YAML --------------------------------------------------------------------------------------


def test_python_object_tag_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "hacked"
    path = tmp_path / "study.yaml"
    path.write_text(f'study_id: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML") as excinfo:
        load_study(path)
    assert str(path) in str(excinfo.value)
    assert not marker.exists()


def test_python_object_tag_with_echo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text('study_id: !!python/object/apply:os.system ["echo hacked"]\n')
    with pytest.raises(ConfigError, match="python/object"):
        load_study(path)


# --- sources ------------------------------------------------------------------------------------------


def test_high_rate_source_without_sampling_rate_is_refused(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["ecg"].pop("sampling_rate_hz"))
    message = load_error(path, data_root)
    assert "sources.ecg" in message
    assert "needs sampling_rate_hz" in message


def test_format_that_cannot_hold_the_kind_is_refused_with_the_allowed_formats(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["labs_lims"].update(format="cwa"))
    message = load_error(path, data_root)
    assert "sources.labs_lims" in message
    assert "'cwa' cannot hold labs data" in message
    assert "fhir, hl7v2, lims_csv" in message


def test_unknown_format_is_refused(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(format="xlsx"))
    assert "sources.vitals.format" in load_error(path, data_root)


@pytest.mark.parametrize("name", ["subjects", "endpoints"])
def test_reserved_source_names_are_refused(tmp_path: Path, data_root: Path, name: str) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"].update({name: raw["sources"]["vitals"]}))
    message = load_error(path, data_root)
    assert "reserved" in message
    assert name in message


def test_source_name_must_be_an_identifier(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"].update({"Vitals-2": raw["sources"]["vitals"]}))
    assert "Vitals-2" in load_error(path, data_root)


def test_unknown_timezone_is_refused(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["axivity"].update(timezone="Europe/Lundon"))
    message = load_error(path, data_root)
    assert "sources.axivity.timezone" in message
    assert "unknown time zone 'Europe/Lundon'" in message


def test_subject_pattern_needs_a_subject_id_group(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(subject_pattern=r"^(S\d{4})_"))
    message = load_error(path, data_root)
    assert "sources.vitals.subject_pattern" in message
    assert "subject_id" in message


def test_unknown_quantity_in_units_is_refused(tmp_path: Path, data_root: Path) -> None:
    # A misspelt quantity would otherwise be ignored by every reader: m/s^2 stored as g, 9.8x too large.
    path = write_study(tmp_path, lambda raw: raw["sources"]["wrist_accel"].update(units={"acceleraton": "m/s^2"}))
    message = load_error(path, data_root)
    assert "sources.wrist_accel.units" in message
    assert "acceleraton" in message


def test_source_config_defaults() -> None:
    source = SourceConfig(kind="vitals", pattern="raw/vitals/*.csv", format="csv")
    assert source.timezone == "UTC"
    assert source.header is True
    assert source.timestamp_encoding == "iso8601"
    assert source.units == {}
    assert source.sampling_rate_hz is None


# --- check severities -------------------------------------------------------------------------------


def test_every_check_rejects_by_default(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw.pop("checks"))
    config = load_study(path, data_root=data_root)
    assert config.checks == {}
    assert {config.severity(check) for check in CheckName} == {Severity.REJECT}


def test_demo_sets_missingness_to_warn_and_leaves_the_rest_rejecting(data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)
    assert config.severity(CheckName.MISSINGNESS) is Severity.WARN
    assert config.severity(CheckName.REQUIRED_COLUMNS) is Severity.REJECT
    assert config.severity(CheckName.PLAUSIBLE_RANGE) is Severity.REJECT


def test_unknown_check_name_is_refused(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["checks"].update(missingnes="warn"))
    message = load_error(path, data_root)
    assert "checks.missingnes" in message
    assert "missingness" in message  # the accepted names are listed


def test_unknown_severity_is_refused(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["checks"].update(missingness="ignore"))
    message = load_error(path, data_root)
    assert "checks.missingness" in message
    assert "'reject' or 'warn'" in message


def test_config_is_frozen(data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)
    with pytest.raises(ValidationError, match="frozen"):
        config.study_id = "other"  # type: ignore[misc]


# --- bounded YAML: alias bombs, recursive aliases, depth and size ---------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """"Billion laughs": each level a list of ``width`` aliases to the level below (width**levels leaves)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_model_params_is_refused_at_load(tmp_path: Path, data_root: Path) -> None:
    demo = DEMO_STUDY.read_text(encoding="utf-8")
    bomb = "\n".join("      " + line for line in alias_bomb().splitlines())
    text = demo.replace("    params: {n_estimators: 200}", "    params:\n      n_estimators: 200\n" + bomb, 1)
    assert text != demo
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")

    message = load_error(path, data_root)

    assert message.startswith(f"{path}: refused the study configuration: aliases expand to more than "
                              f"{MAX_YAML_NODES} values")


REFUSED_YAML = {
    "aliases": ("base: &b 1\nvalues: [" + ", ".join(["*b"] * (MAX_YAML_ALIASES + 1)) + "]\n",
                rf"line 2: more than {MAX_YAML_ALIASES} alias references"),
    "recursive": ("a: &a [1, *a]\n", "an alias refers to a value that contains it"),
    "deep": ("a: " + "[" * 10_000 + "]" * 10_000 + "\n", rf"line 1: nested more than {MAX_YAML_DEPTH} levels deep"),
    "large": ("# padding\n" * (MAX_YAML_BYTES // 10 + 1), rf"\d+ bytes is more than the {MAX_YAML_BYTES} bytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_YAML))
def test_yaml_beyond_the_loaders_bounds_is_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    text, reason = REFUSED_YAML[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: refused the file: {reason}"):  # no RecursionError
        load_yaml(path)


def test_modest_aliases_load_as_shared_values(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("defaults: &d {max_iter: 200, seed: 7}\na: *d\nb: {<<: *d, seed: 8}\n")
    assert load_yaml(path) == {"defaults": {"max_iter": 200, "seed": 7}, "a": {"max_iter": 200, "seed": 7},
                               "b": {"max_iter": 200, "seed": 8}}


def test_registered_api_keys_go_through_the_bounded_loader(tmp_path: Path, data_root: Path) -> None:
    from pipelines.cli import api_keys_path, registered_api_keys

    config = load_study(DEMO_STUDY, data_root=data_root)
    path = api_keys_path(config)
    path.parent.mkdir(parents=True)
    path.write_text(alias_bomb())
    with pytest.raises(ConfigError, match=r"api_keys\.yaml: refused the registered API keys: aliases expand"):
        registered_api_keys(config)


def test_no_yaml_is_loaded_around_the_bounded_loader() -> None:
    repository = DEMO_STUDY.parents[2]
    unbounded = [f"{path.relative_to(repository)}:{number}"
                 for folder in ("pipelines", "serving", "training", "features", "validation")
                 for path in (repository / folder).rglob("*.py")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if "yaml.safe_load(" in line or "yaml.load(" in line and "_BoundedLoader" not in line]
    assert unbounded == []


# --- symbolic links in place of platform folders ------------------------------------------------


@pytest.mark.parametrize("folder", [".platform", ".platform/curated", ".platform/quarantine", ".platform/reports"])
def test_symlinked_platform_folder_is_refused_at_load(tmp_path: Path, data_root: Path, folder: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = data_root / folder
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)

    message = load_error(DEMO_STUDY, data_root)

    assert message == (f"{DEMO_STUDY}: platform folder {link} is a symbolic link (to {outside}); the platform writes "
                       "only into real folders under the data root: replace the link with a folder")


def test_symlink_to_a_folder_inside_the_data_root_is_refused_too(data_root: Path) -> None:
    (data_root / "inside").mkdir()
    (data_root / ".platform").mkdir()
    (data_root / ".platform" / "reports").symlink_to(data_root / "inside", target_is_directory=True)
    assert "platform folder" in load_error(DEMO_STUDY, data_root)


def test_a_link_made_after_load_is_refused_before_any_write(tmp_path: Path, data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)
    assert config.quarantine_root == (data_root / ".platform" / "quarantine").resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data_root / ".platform").mkdir()
    (data_root / ".platform" / "quarantine").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"quarantine is a symbolic link"):
        _ = config.quarantine_root
    assert config.lake_root == (data_root / ".platform" / "curated").resolve()  # the other folders still resolve


def test_ingest_refuses_a_quarantine_link_made_after_load_and_writes_nothing_there(tmp_path: Path) -> None:
    from pipelines.ingest.run import ingest_study
    from tests.pipelines.conftest import make_study

    root = tmp_path / "tiny"
    study = make_study(root, n_subjects=2)
    (root / "raw" / "minute" / "S0002_minute.csv").write_text("time,steps\n")  # header only: to quarantine
    config = load_study(study)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / ".platform").mkdir()
    (root / ".platform" / "quarantine").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ConfigError, match=r"platform folder .*quarantine is a symbolic link"):
        ingest_study(config, workers=1)

    assert list(outside.iterdir()) == []


# --- biomarkers: the algorithms and parameters per family ----------------------------------


def test_biomarker_settings_default_to_the_published_methods(data_root: Path) -> None:
    config = load_study(DEMO_STUDY, data_root=data_root)
    assert config.biomarkers.hrv.artefact_method == "lipponen_tarvainen_2019"
    assert config.biomarkers.hrv.alpha == 5.2 and config.biomarkers.hrv.window_s == 300
    assert config.biomarkers.activity.cutpoints == "migueles_wrist_adult"
    assert config.biomarkers.activity.min_wear_min == 600


def test_a_study_chooses_its_algorithms_and_parameters(tmp_path: Path, data_root: Path) -> None:
    def change(raw: dict) -> None:
        raw["biomarkers"] = {"hrv": {"artefact_method": "local_median", "local_median_max_deviation": 0.3},
                             "activity": {"cutpoints": {"light_mg": 45, "moderate_mg": 100, "vigorous_mg": 400},
                                          "min_wear_hours": 8}}

    config = load_study(write_study(tmp_path, change), data_root=data_root)
    assert config.biomarkers.hrv.artefact_options() == {"method": "local_median", "max_deviation_fraction": 0.3}
    assert config.biomarkers.hrv.artefact_options(edited=True) == {"method": "none"}
    assert config.biomarkers.activity.skdh_cutpoints()["sedentary"] == pytest.approx(0.045)
    assert config.biomarkers.activity.min_wear_min == 480


@pytest.mark.parametrize(("gait", "enrollment", "height"), [
    ({}, {"height_m": [1.71]}, 1.71),
    ({}, {"height_m": [float("nan")]}, None),
    ({}, {}, None),
    ({"height_source": "fixed", "height_m": 1.65}, {"height_m": [1.71]}, 1.65),
    ({"height_source": "none"}, {"height_m": [1.71]}, None),
])
def test_gait_speed_takes_the_height_the_study_says(gait: dict, enrollment: dict, height: float | None) -> None:
    settings = BiomarkerSettings(gait=gait)
    assert settings.gait.height_of(pd.DataFrame({"subject_id": ["S0001"], **enrollment})) == height


@pytest.mark.parametrize(("biomarkers", "expected"), [
    ({"hrv": {"artefact_method": "kubios"}}, "biomarkers.hrv.artefact_method: Input should be"),
    ({"hrv": {"window_s": 10}}, "biomarkers.hrv.window_s: Input should be greater than or equal to 60"),
    ({"hrv": {"window_s": 120, "min_duration_s": 200}}, "min_duration_s 200 is longer than the analysed window"),
    ({"hrv": {"alpha": -1}}, "biomarkers.hrv.alpha: Input should be greater than or equal to 2"),
    ({"activity": {"cutpoints": "white_met"}}, "biomarkers.activity.cutpoints.name: Input should be"),
    ({"activity": {"cutpoints": {"light_mg": 100, "moderate_mg": 50, "vigorous_mg": 400}}},
     "biomarkers.activity.cutpoints.thresholds: Value error, cut-points must increase"),
    ({"activity": {"min_wear_min": 600}}, "biomarkers.activity.min_wear_min: unknown key"),
    ({"gait": {"enabled": "sometimes"}}, "biomarkers.gait.enabled: Input should be a valid boolean"),
    ({"gait": {"height_source": "fixed"}}, "biomarkers.gait: Value error, height_m is the height of height_source "
                                           "fixed: give both or neither"),
    ({"gait": {"height_m": 170}}, "biomarkers.gait.height_m: Input should be less than or equal to 2.5"),
    ({"sleep_diary": {"on": True}}, "biomarkers.sleep_diary: unknown key"),
    ({"hrv": {"min_night_segments": 80}}, "min_night_segments 80 of 300 s do not fit in the night window "
                                          "(00:00 to 06:00)"),
    ({"hrv": {"segment_s": 60}}, "min_duration_s 120 is longer than a night segment segment_s 60"),
    ({"sleep": {"minute_window_hours": 30}}, "biomarkers.sleep.minute_window_hours: Input should be less than or "
                                             "equal to 24"),
])
def test_a_bad_biomarker_setting_is_named_with_the_file(tmp_path: Path, data_root: Path, biomarkers: dict,
                                                        expected: str) -> None:
    path = write_study(tmp_path, lambda raw: raw.update(biomarkers=biomarkers))
    message = load_error(path, data_root)
    assert str(path) in message and expected in message


def test_edited_intervals_are_for_rr_sources_only(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(intervals_edited=True))
    assert "intervals_edited is for rr_intervals sources, not vitals" in load_error(path, data_root)


def test_overnight_heartbeat_recordings_are_for_heartbeat_sources_only(tmp_path: Path, data_root: Path) -> None:
    path = write_study(tmp_path, lambda raw: raw["sources"]["vitals"].update(hrv_recording="night"))
    assert "hrv_recording is for rr_intervals, ecg and ppg sources, not vitals" in load_error(path, data_root)
    path = write_study(tmp_path, lambda raw: raw["sources"]["rr_intervals"].update(hrv_recording="evening"))
    assert "hrv_recording: Input should be 'morning' or 'night'" in load_error(path, data_root)
    path = write_study(tmp_path, lambda raw: raw["sources"]["rr_intervals"].update(intervals_edited=True))
    assert load_study(path, data_root=data_root).sources["rr_intervals"].intervals_edited
