"""Unit conversion of device signals to the canonical units of ``validation.schemas``.

Converted once, at ingest. Lab analytes have their own table in ``validation.analytes``.
"""

from __future__ import annotations

import numpy as np

STANDARD_GRAVITY_M_S2 = 9.80665  # CGPM 1901, exact by definition

# quantity -> canonical unit -> {accepted unit spelling: (scale, offset)}; canonical = value * scale + offset
_CONVERSIONS: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "acceleration": (
        "g",
        {"g": (1.0, 0.0), "mg": (1e-3, 0.0), "m/s^2": (1 / STANDARD_GRAVITY_M_S2, 0.0),
         "m/s2": (1 / STANDARD_GRAVITY_M_S2, 0.0)},
    ),
    "angular_velocity": ("deg/s", {"deg/s": (1.0, 0.0), "rad/s": (180 / np.pi, 0.0)}),
    "temperature": ("degC", {"degC": (1.0, 0.0), "degF": (5 / 9, -32 * 5 / 9), "K": (1.0, -273.15)}),
    "ecg": ("mV", {"mV": (1.0, 0.0), "uV": (1e-3, 0.0), "V": (1e3, 0.0)}),
    "rr_interval": ("ms", {"ms": (1.0, 0.0), "s": (1e3, 0.0)}),
    "spo2": ("%", {"%": (1.0, 0.0), "fraction": (100.0, 0.0)}),
    "heart_rate": ("bpm", {"bpm": (1.0, 0.0), "1/min": (1.0, 0.0)}),
    "ppg": ("a.u.", {"a.u.": (1.0, 0.0)}),
}

# Which canonical columns hold which quantity, so a source's `units: {quantity: unit}` applies.
QUANTITY_OF_COLUMN: dict[str, str] = {
    "accel_x_g": "acceleration",
    "accel_y_g": "acceleration",
    "accel_z_g": "acceleration",
    "gyro_x_deg_s": "angular_velocity",
    "gyro_y_deg_s": "angular_velocity",
    "gyro_z_deg_s": "angular_velocity",
    "temperature_deg_c": "temperature",
    "ecg_mv": "ecg",
    "ppg_au": "ppg",
    "rr_interval_ms": "rr_interval",
    "spo2_percent": "spo2",
    "heart_rate_bpm": "heart_rate",
}


class UnitError(ValueError):
    """A unit the platform cannot convert; the message lists the accepted ones."""


def check_units(units: dict[str, str]) -> None:
    """Raise ``UnitError`` for an unknown quantity or unit in a source's ``units`` mapping."""
    for quantity, unit in units.items():
        if quantity not in _CONVERSIONS:
            raise UnitError(f"unknown quantity {quantity!r} (known: {', '.join(sorted(_CONVERSIONS))})")
        accepted = _CONVERSIONS[quantity][1]
        if unit not in accepted:
            raise UnitError(f"unit {unit!r} of {quantity} is not accepted (accepted: {', '.join(accepted)})")


def to_canonical(values: np.ndarray, quantity: str, unit: str) -> np.ndarray:
    """Convert ``values`` of ``quantity`` given in ``unit`` to the canonical unit.

    Returns the input array itself when no conversion is needed, so large signals are not copied.
    """
    check_units({quantity: unit})
    scale, offset = _CONVERSIONS[quantity][1][unit]
    if scale == 1.0 and offset == 0.0:
        return values
    converted = values * np.asarray(scale, dtype=values.dtype)
    if offset:
        converted += np.asarray(offset, dtype=values.dtype)
    return converted
