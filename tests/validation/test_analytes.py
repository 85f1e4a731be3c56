"""The analyte table: LOINC mapping, unit spellings, conversions and unit guesses."""

from __future__ import annotations

import math
import re

import pytest

from validation.analytes import (
    ANALYTES,
    CANONICAL_UNIT_BY_ANALYTE,
    KNOWN_UNITS,
    abnormal_flag,
    analyte_for,
    guess_reported_unit,
    normalise_unit,
    to_canonical,
)


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("creatinine", 88.42, "umol/L", 1.0),
        ("creatinine", 1.0, "mg/dL", 1.0),
        ("glucose", 5.55, "mmol/L", 99.989),
        ("hemoglobin", 135, "g/L", 13.5),
        ("urea_nitrogen", 5.0, "mmol/L", 14.005),  # urea mmol/L -> BUN mg/dL, x 2.801
        ("bilirubin_total", 17.104, "umol/L", 1.0),
        ("calcium", 2.5, "mmol/L", 10.02),
        ("calcium", 5.0, "mEq/L", 10.02),  # divalent: 2 mEq per mmol
        ("albumin", 40, "g/L", 4.0),
        ("alt", 1.0, "ukat/L", 60.0),
        ("c_reactive_protein", 1.2, "mg/dL", 12.0),
        ("troponin_t", 0.05, "ug/L", 50.0),
        ("white_blood_cells", 7.2, "10^9/L", 7.2),
        ("white_blood_cells", 7500, "cells/uL", 7.5),
        ("hematocrit", 0.42, "L/L", 42.0),
        ("lactate", 18.016, "mg/dL", 2.0),
        ("cholesterol_total", 5.0, "mmol/L", 193.35),
        ("hba1c", 48, "mmol/mol", 6.543),  # IFCC 48 mmol/mol is the 6.5 % diagnostic threshold
        ("sodium", 141, "mEq/L", 141.0),
    ],
)
def test_to_canonical_converts_reported_units(analyte, value, unit, expected):
    assert to_canonical(ANALYTES[analyte], value, unit) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [("hemoglobin", "mmol/L"), ("creatinine", "U/L"), ("glucose", None), ("glucose", ""), ("sodium", "mg/dL")],
)
def test_to_canonical_refuses_units_the_analyte_does_not_accept(analyte, unit):
    assert to_canonical(ANALYTES[analyte], 1.0, unit) is None


def test_to_canonical_keeps_nan():
    assert math.isnan(to_canonical(ANALYTES["creatinine"], math.nan, "umol/L"))


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("umol/L", "umol/L"), ("µmol/L", "umol/L"), ("μmol/l", "umol/L"), ("UMOL/L", "umol/L"), ("mcmol/L", "umol/L"),
        ("10*9/L", "10*9/L"), ("10^9/L", "10*9/L"), ("x10E9/L", "10*9/L"), ("×10⁹/L", "10*9/L"), ("10**9/l", "10*9/L"),
        ("10^3/uL", "10*3/uL"), ("K/uL", "10*3/uL"), ("x10E3/mm3", "10*3/uL"), ("thou/uL", "10*3/uL"),
        ("mg/dl", "mg/dL"), (" mg / dL ", "mg/dL"), ("mg%", "mg/dL"), ("IU/L", "U/L"), ("mEq/l", "mEq/L"),
        ("mcg/L", "ug/L"), ("percent", "%"),
        ("furlongs", "furlongs"), ("", None), (None, None), (math.nan, None),
    ],
)
def test_normalise_unit_folds_spelling_variants(spelling, expected):
    assert normalise_unit(spelling) == expected


def test_analyte_for_finds_by_any_loinc_code():
    assert analyte_for("2160-0", None).name == "creatinine"
    assert analyte_for("14682-9", None).name == "creatinine"
    assert analyte_for("15074-8", None).name == "glucose"
    assert analyte_for(" 718-7 ", None).name == "hemoglobin"


def test_analyte_for_falls_back_to_name_and_alias_ignoring_case():
    assert analyte_for(None, "C-Reactive Protein").name == "c_reactive_protein"
    assert analyte_for("", "HGB").name == "hemoglobin"
    assert analyte_for("99999-9", "Haemoglobin").name == "hemoglobin"  # an unknown code falls through
    assert analyte_for(None, "white_blood_cells").name == "white_blood_cells"
    assert analyte_for(None, "Ferritin") is None
    assert analyte_for(None, None) is None


def test_loinc_code_wins_over_name():
    assert analyte_for("2345-7", "Creatinine").name == "glucose"


def test_canonical_loinc_codes():
    expected = {"creatinine": "2160-0", "glucose": "2345-7", "hemoglobin": "718-7", "c_reactive_protein": "1988-5"}
    assert {name: ANALYTES[name].loinc_code for name in expected} == expected


@pytest.mark.parametrize(
    ("analyte", "values", "expected"),
    [
        ("creatinine", [88.0, 112.0, 310.0], "umol/L"),
        ("hemoglobin", [135.0, 142.0], "g/L"),
        ("glucose", [5.5, 6.1, 4.2], "mmol/L"),
        ("hematocrit", [0.41], "L/L"),
        ("white_blood_cells", [7500.0], "/uL"),
        ("hba1c", [48.0, 53.0], "mmol/mol"),
        ("calcium", [2.4], "mmol/L"),
        ("creatinine", [-3.0], None),  # no unit explains a negative creatinine
        ("creatinine", [], None),
    ],
)
def test_guess_reported_unit(analyte, values, expected):
    assert guess_reported_unit(ANALYTES[analyte], values) == expected


def test_guess_needs_most_values_explained():
    assert guess_reported_unit(ANALYTES["creatinine"], [88.0, -1.0, -2.0]) is None
    assert guess_reported_unit(ANALYTES["creatinine"], [88.0, 97.0, -2.0]) == "umol/L"


def test_abnormal_flag():
    assert abnormal_flag(0.5, 0.6, 1.2) == "L"
    assert abnormal_flag(1.3, 0.6, 1.2) == "H"
    assert abnormal_flag(1.0, 0.6, 1.2) == "N"
    assert abnormal_flag(12.0, math.nan, 5.0) == "H"
    assert abnormal_flag(1.0, None, None) is None
    assert abnormal_flag(math.nan, 0.6, 1.2) is None


def test_table_is_consistent():
    loinc = re.compile(r"^\d{1,7}-\d$")
    codes = [code for analyte in ANALYTES.values() for code in analyte.loinc_codes]
    assert len(codes) == len(set(codes)), "a LOINC code is claimed by two analytes"
    assert 15 <= len(ANALYTES) <= 25
    for name, analyte in ANALYTES.items():
        assert name == analyte.name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert all(loinc.match(code) for code in analyte.loinc_codes), name
        assert analyte.accepted_units[0] == analyte.unit
        assert analyte.conversions[analyte.unit].factor == 1.0
        for unit in analyte.conversions:  # every accepted unit is written the way the normaliser writes it
            assert normalise_unit(unit) == unit, (name, unit)
        low, high = analyte.plausible_range
        assert low < high
        ref_low, ref_high = analyte.reference_range
        assert low <= (ref_low if ref_low is not None else low) < (ref_high if ref_high is not None else high) <= high
    assert KNOWN_UNITS == frozenset(CANONICAL_UNIT_BY_ANALYTE.values())
    assert CANONICAL_UNIT_BY_ANALYTE["creatinine"] == "mg/dL"
    assert CANONICAL_UNIT_BY_ANALYTE["white_blood_cells"] == "10*3/uL"

