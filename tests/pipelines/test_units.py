"""Unit conversion to the canonical units of ``validation.schemas``."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.ingest.units import QUANTITY_OF_COLUMN, STANDARD_GRAVITY_M_S2, UnitError, check_units, to_canonical
from validation.schemas import SCHEMAS


@pytest.mark.parametrize(
    ("quantity", "unit"),
    [("acceleration", "g"), ("angular_velocity", "deg/s"), ("temperature", "degC"), ("rr_interval", "ms")],
)
def test_canonical_unit_returns_the_same_array_object(quantity: str, unit: str) -> None:
    values = np.array([1.0, 2.0, 3.0])
    assert to_canonical(values, quantity, unit) is values


def test_conversion_does_not_mutate_its_input() -> None:
    values = np.array([9.80665, 0.0])
    converted = to_canonical(values, "acceleration", "m/s^2")
    assert converted is not values
    np.testing.assert_array_equal(values, [9.80665, 0.0])


@pytest.mark.parametrize("unit", ["m/s^2", "m/s2"])
def test_metres_per_second_squared_to_g_is_exact(unit: str) -> None:
    values = np.array([STANDARD_GRAVITY_M_S2, -2 * STANDARD_GRAVITY_M_S2, 0.0])
    np.testing.assert_allclose(to_canonical(values, "acceleration", unit), [1.0, -2.0, 0.0], rtol=0, atol=1e-12)


def test_standard_gravity_is_the_cgpm_value() -> None:
    assert STANDARD_GRAVITY_M_S2 == 9.80665


def test_milli_g_to_g() -> None:
    np.testing.assert_allclose(to_canonical(np.array([1000.0, -250.0]), "acceleration", "mg"), [1.0, -0.25], atol=1e-12)


def test_fahrenheit_to_celsius_applies_the_offset() -> None:
    converted = to_canonical(np.array([32.0, 212.0, 98.6, -40.0]), "temperature", "degF")
    np.testing.assert_allclose(converted, [0.0, 100.0, 37.0, -40.0], atol=1e-9)


def test_kelvin_to_celsius() -> None:
    np.testing.assert_allclose(to_canonical(np.array([273.15, 310.15]), "temperature", "K"), [0.0, 37.0], atol=1e-9)


def test_rr_interval_seconds_to_milliseconds() -> None:
    np.testing.assert_allclose(to_canonical(np.array([0.8, 1.25]), "rr_interval", "s"), [800.0, 1250.0], atol=1e-9)


def test_radians_per_second_to_degrees_per_second() -> None:
    np.testing.assert_allclose(to_canonical(np.array([np.pi]), "angular_velocity", "rad/s"), [180.0], atol=1e-9)


def test_float32_signals_stay_float32() -> None:
    values = np.array([9.80665, 86.0], dtype=np.float32)
    assert to_canonical(values, "acceleration", "m/s^2").dtype == np.float32
    assert to_canonical(values, "temperature", "degF").dtype == np.float32
    np.testing.assert_allclose(to_canonical(values, "acceleration", "m/s^2")[0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(to_canonical(values, "temperature", "degF")[1], 30.0, rtol=1e-6)


def test_unknown_unit_lists_the_accepted_ones() -> None:
    with pytest.raises(UnitError, match=r"'furlong/s\^2' of acceleration is not accepted") as excinfo:
        to_canonical(np.array([1.0]), "acceleration", "furlong/s^2")
    assert "g, mg, m/s^2, m/s2" in str(excinfo.value)


def test_unknown_quantity_lists_the_known_ones() -> None:
    with pytest.raises(UnitError, match="unknown quantity 'acceleraton'") as excinfo:
        check_units({"acceleraton": "g"})
    assert "acceleration" in str(excinfo.value)


def test_unit_error_is_a_value_error() -> None:
    assert issubclass(UnitError, ValueError)


def test_check_units_accepts_known_units() -> None:
    check_units({"acceleration": "m/s^2", "temperature": "degF", "rr_interval": "s", "ecg": "uV"})
    check_units({})


def test_every_unit_column_of_the_schemas_names_a_known_quantity() -> None:
    # A column listed here must be a canonical column somewhere, so `units:` applies to something.
    canonical = {column.name for schema in SCHEMAS.values() for column in schema.columns}
    assert set(QUANTITY_OF_COLUMN) <= canonical
    check_units({quantity: unit for quantity, unit in _canonical_units().items()})


def _canonical_units() -> dict[str, str]:
    """Quantity -> the schema's unit of its columns (the canonical unit must be accepted as is)."""
    units = {}
    for schema in SCHEMAS.values():
        for column in schema.columns:
            if column.name in QUANTITY_OF_COLUMN and column.unit:
                units[QUANTITY_OF_COLUMN[column.name]] = column.unit
    return units
