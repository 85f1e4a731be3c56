"""Laboratory analytes: LOINC codes, canonical units, unit conversions and plausible ranges.

Pure data and pure functions. A lab reader maps every reported result to one analyte of
``ANALYTES`` (by LOINC code, else by test name), converts the value from the reported unit
to the analyte's canonical unit with ``to_canonical`` and keeps the row unconverted when the
unit is not one the analyte accepts, so that the validation step reports it.

Canonical units are the US conventional units (mass per volume: creatinine mg/dL, glucose
mg/dL, hemoglobin g/dL), except where US laboratories themselves report in substance units
(electrolytes and lactate in mmol/L). The canonical LOINC code of an analyte is the code of
its canonical unit's property (``MCnc`` "Mass/volume" where the canonical unit is a mass
concentration); codes of the same analyte in other units (``SCnc`` "Moles/volume") and
other specimens (blood instead of serum or plasma) are accepted as aliases.

Sources of the conversion factors
---------------------------------
Substance to mass factors are molar mass / 10 (mmol/L -> mg/dL) with molar masses from the
IUPAC standard atomic weights, and agree with the SI conversion table of
Young DS, "Implementation of SI units for clinical laboratory data", Ann Intern Med
1987;106:114-129 (reproduced in the AMA Manual of Style, 11th ed., section 18.5, table 18.5-1).
Each factor below names its molar mass. HbA1c uses the IFCC-NGSP master equation
(Hoelzel W et al., Clin Chem 2004;50:166-174). Enzyme activities: 1 U = 1 umol/min and
1 kat = 1 mol/s, so 1 ukat/L = 60 U/L (IFCC recommendation; Dybkaer R, Clin Chem Lab Med
2001;39:1-8).

Reference ranges are typical adult intervals (Harrison's Principles of Internal Medicine,
21st ed., appendix "Laboratory values of clinical importance"; ADA Standards of Care 2024
for glucose and HbA1c; Roche Elecsys hs-cTnT package insert for troponin T). A laboratory's
own interval, when its message carries one, always takes precedence. Plausible ranges are
deliberately wide, what a living patient can have; a value outside one is a unit or entry
error far more often than a patient.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ANALYTES",
    "Analyte",
    "CANONICAL_UNIT_BY_ANALYTE",
    "Conversion",
    "KNOWN_UNITS",
    "abnormal_flag",
    "analyte_for",
    "conversion_for",
    "guess_reported_unit",
    "normalise_unit",
    "to_canonical",
]


@dataclass(frozen=True)
class Conversion:
    """An affine map from a reported unit to the canonical unit: ``canonical = value * factor + offset``.

    Every conversion is a plain factor except HbA1c IFCC -> NGSP, which has an offset.
    """

    factor: float
    offset: float = 0.0

    def apply(self, value):
        """Convert a float or an array of floats to the canonical unit (NaN stays NaN)."""
        return value * self.factor + self.offset


_SAME = Conversion(1.0)


@dataclass(frozen=True)
class Analyte:
    """One laboratory analyte.

    Attributes
    ----------
    name : canonical snake_case name, e.g. ``creatinine``; the ``analyte`` column of the LABS frame.
    label : short human name used in test names and messages, e.g. ``Creatinine``.
    loinc_code : the canonical LOINC code, whose unit is ``unit``.
    display : the LOINC long common name of ``loinc_code``.
    unit : canonical unit (UCUM spelling as returned by ``normalise_unit``).
    other_loinc_codes : LOINC codes of the same analyte in other units or specimens.
    aliases : test names that mean this analyte, compared after ``_name_key``.
    conversions : reported unit (as returned by ``normalise_unit``) -> conversion to ``unit``.
        Includes ``unit`` itself. A unit not listed is not accepted.
    plausible_range : (low, high) in ``unit``: what a living patient can have.
    reference_range : (low, high) in ``unit``: a typical adult interval; ``None`` for an open end.
    """

    name: str
    label: str
    loinc_code: str
    display: str
    unit: str
    other_loinc_codes: tuple[str, ...]
    aliases: tuple[str, ...]
    conversions: Mapping[str, Conversion] = field(hash=False)
    plausible_range: tuple[float, float]
    reference_range: tuple[float | None, float | None]

    @property
    def loinc_codes(self) -> tuple[str, ...]:
        """The canonical code first, then the others."""
        return (self.loinc_code, *self.other_loinc_codes)

    @property
    def accepted_units(self) -> tuple[str, ...]:
        """Every reported unit this analyte converts from, canonical unit first."""
        return (self.unit, *(u for u in self.conversions if u != self.unit))


def _analyte(
    name: str,
    label: str,
    loinc: str,
    display: str,
    unit: str,
    *,
    other_loinc: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    convert: Mapping[str, Conversion | float] | None = None,
    plausible: tuple[float, float],
    reference: tuple[float | None, float | None],
) -> Analyte:
    conversions: dict[str, Conversion] = {unit: _SAME}
    for reported, how in (convert or {}).items():
        conversions[reported] = how if isinstance(how, Conversion) else Conversion(float(how))
    return Analyte(name, label, loinc, display, unit, other_loinc, aliases, conversions, plausible, reference)


# Molar masses (g/mol) behind the substance <-> mass factors; mmol/L * M / 10 = mg/dL.
_CREATININE_UMOL_PER_MG_DL = 88.42  # M = 113.12 g/mol gives 88.40; 88.42 is the factor in the MDRD/IDMS tables
_GLUCOSE_MG_DL_PER_MMOL = 18.016  # M = 180.16 g/mol
_UREA_N_MG_DL_PER_MMOL = 2.801  # one urea (60.06 g/mol) carries two N: 2 * 14.007 g/mol = 28.014 g/mol
_BILIRUBIN_UMOL_PER_MG_DL = 17.104  # M = 584.66 g/mol
_CALCIUM_MG_DL_PER_MMOL = 4.008  # M = 40.078 g/mol; calcium is divalent, so 1 mEq/L = 0.5 mmol/L
_CHOLESTEROL_MG_DL_PER_MMOL = 38.67  # M = 386.65 g/mol
_LACTATE_MG_DL_PER_MMOL = 9.008  # lactic acid M = 90.08 g/mol
_U_PER_UKAT = 60.0  # 1 ukat = 1 umol/s = 60 umol/min = 60 U

_ANALYTE_LIST: tuple[Analyte, ...] = (
    # --- renal and metabolic chemistry -------------------------------------------------------
    _analyte(
        "creatinine", "Creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL",
        other_loinc=("14682-9", "38483-4", "59826-8"),  # umol/L S/P; mg/dL blood; umol/L blood
        aliases=("creat", "crea", "cre", "serum creatinine", "creatinine serum", "plasma creatinine"),
        convert={
            "umol/L": 1 / _CREATININE_UMOL_PER_MG_DL,
            "mmol/L": 1000 / _CREATININE_UMOL_PER_MG_DL,
            "mg/L": 0.1,
        },
        plausible=(0.1, 20.0),
        reference=(0.6, 1.3),
    ),
    _analyte(
        "glucose", "Glucose", "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL",
        other_loinc=("2339-0", "14749-6", "15074-8"),  # mg/dL blood; mmol/L S/P; mmol/L blood
        aliases=("glu", "gluc", "blood glucose", "plasma glucose", "serum glucose", "glucose random"),
        convert={"mmol/L": _GLUCOSE_MG_DL_PER_MMOL, "g/L": 100.0},
        plausible=(10.0, 2000.0),  # severe hypoglycaemia to hyperosmolar state
        reference=(70.0, 99.0),  # fasting, ADA
    ),
    _analyte(
        "urea_nitrogen", "Urea nitrogen", "3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL",
        # 6299-2 BUN mg/dL blood; 14937-7 and 22664-7 are the mmol/L codes laboratories use for
        # urea. 3091-6 (urea mass, mg/dL) is left out on purpose: its mg/dL is urea, not urea
        # nitrogen (x 0.4665), and a plain "urea" name in mg/dL is equally ambiguous, so such
        # rows stay unknown and are reported rather than silently converted by the wrong factor.
        other_loinc=("6299-2", "14937-7", "22664-7"),
        aliases=("bun", "blood urea nitrogen", "urea n", "serum urea nitrogen"),
        convert={"mmol/L": _UREA_N_MG_DL_PER_MMOL},
        plausible=(1.0, 300.0),
        reference=(7.0, 20.0),
    ),
    _analyte(
        "sodium", "Sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L",
        other_loinc=("2947-0",),
        aliases=("na", "serum sodium"),
        convert={"mEq/L": 1.0},  # monovalent: 1 mEq = 1 mmol
        plausible=(90.0, 200.0),
        reference=(135.0, 145.0),
    ),
    _analyte(
        "potassium", "Potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L",
        other_loinc=("6298-4",),
        aliases=("k", "serum potassium"),
        convert={"mEq/L": 1.0},
        plausible=(1.0, 12.0),
        reference=(3.5, 5.1),
    ),
    _analyte(
        "chloride", "Chloride", "2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L",
        other_loinc=("2069-3",),
        aliases=("cl", "serum chloride"),
        convert={"mEq/L": 1.0},
        plausible=(50.0, 160.0),
        reference=(98.0, 107.0),
    ),
    _analyte(
        "bicarbonate", "Bicarbonate", "1963-8", "Bicarbonate [Moles/volume] in Serum or Plasma", "mmol/L",
        aliases=("hco3", "bicarb", "serum bicarbonate"),
        convert={"mEq/L": 1.0},
        plausible=(2.0, 60.0),
        reference=(22.0, 29.0),
    ),
    _analyte(
        "calcium", "Calcium", "17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL",
        other_loinc=("2000-8",),  # mmol/L
        aliases=("ca", "calcium total", "total calcium", "serum calcium"),
        convert={"mmol/L": _CALCIUM_MG_DL_PER_MMOL, "mEq/L": _CALCIUM_MG_DL_PER_MMOL / 2},
        plausible=(3.0, 20.0),  # a reading of 2.4 is mmol/L, not a patient
        reference=(8.6, 10.3),
    ),
    _analyte(
        "lactate", "Lactate", "2524-7", "Lactate [Moles/volume] in Serum or Plasma", "mmol/L",
        # mmol/L although a mass code exists: US laboratories report lactate in mmol/L and the
        # Sepsis-3 thresholds (2 and 4 mmol/L) are stated in it.
        other_loinc=("32693-4", "59032-3"),  # mmol/L blood; mg/dL blood
        aliases=("lactic acid", "lac", "blood lactate"),
        convert={"mg/dL": 1 / _LACTATE_MG_DL_PER_MMOL},
        plausible=(0.1, 30.0),
        reference=(0.5, 2.2),
    ),
    _analyte(
        "hba1c", "Hemoglobin A1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%",
        other_loinc=("59261-8",),  # IFCC mmol/mol
        aliases=("hemoglobin a1c", "haemoglobin a1c", "a1c", "hb a1c", "glycated hemoglobin", "glycated haemoglobin"),
        # NGSP % = 0.09148 * IFCC mmol/mol + 2.152 (Hoelzel et al. 2004)
        convert={"mmol/mol": Conversion(0.09148, 2.152)},
        plausible=(3.0, 20.0),
        reference=(4.0, 5.6),  # ADA: 5.7 % and above is prediabetes
    ),
    _analyte(
        "cholesterol_total", "Cholesterol", "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL",
        other_loinc=("14647-2",),  # mmol/L
        aliases=("cholesterol", "total cholesterol", "chol"),
        convert={"mmol/L": _CHOLESTEROL_MG_DL_PER_MMOL},
        plausible=(20.0, 1500.0),
        reference=(None, 200.0),  # NCEP ATP III "desirable"
    ),
    # --- liver and protein -------------------------------------------------------------------
    _analyte(
        "albumin", "Albumin", "1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL",
        other_loinc=("61151-7",),  # by bromocresol green
        aliases=("alb", "serum albumin"),
        convert={"g/L": 0.1},
        plausible=(0.5, 7.0),
        reference=(3.5, 5.0),
    ),
    _analyte(
        "alt", "ALT", "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L",
        other_loinc=("1743-4", "1744-2"),  # with / without pyridoxal-5'-phosphate
        aliases=("alanine aminotransferase", "sgpt", "alat", "gpt"),
        convert={"ukat/L": _U_PER_UKAT, "nkat/L": _U_PER_UKAT / 1000},
        plausible=(0.0, 20000.0),  # acute liver failure reaches the thousands
        reference=(7.0, 56.0),
    ),
    _analyte(
        "ast", "AST", "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L",
        other_loinc=("30239-8", "88112-8"),  # with / without pyridoxal-5'-phosphate
        aliases=("aspartate aminotransferase", "sgot", "asat", "got"),
        convert={"ukat/L": _U_PER_UKAT, "nkat/L": _U_PER_UKAT / 1000},
        plausible=(0.0, 20000.0),
        reference=(10.0, 40.0),
    ),
    _analyte(
        "bilirubin_total", "Bilirubin, total", "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL",
        other_loinc=("14631-6", "42719-5"),  # umol/L S/P; mg/dL blood
        aliases=("total bilirubin", "bilirubin", "tbil", "t bili", "bili total"),
        convert={"umol/L": 1 / _BILIRUBIN_UMOL_PER_MG_DL, "mg/L": 0.1},
        plausible=(0.05, 60.0),
        reference=(0.1, 1.2),
    ),
    # --- inflammation and cardiac --------------------------------------------------------------
    _analyte(
        "c_reactive_protein", "C-reactive protein", "1988-5",
        "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L",
        other_loinc=("30522-7",),  # high-sensitivity method, same unit
        aliases=("crp", "hs crp", "hscrp", "c reactive protein high sensitivity"),
        convert={"mg/dL": 10.0, "ug/mL": 1.0},
        plausible=(0.0, 700.0),
        reference=(None, 5.0),
    ),
    _analyte(
        "troponin_t", "Troponin T", "67151-1",
        "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method", "ng/L",
        # ng/L because high-sensitivity assays (99th percentile 14 ng/L) have replaced the
        # ug/L ones; 6598-7 is the conventional-assay code, reported in ug/L (= ng/mL).
        other_loinc=("6598-7",),
        aliases=("hs troponin t", "hs ctnt", "ctnt", "tnt", "hstnt", "troponin t hs", "high sensitivity troponin t",
                 "cardiac troponin t"),
        convert={"pg/mL": 1.0, "ng/mL": 1000.0, "ug/L": 1000.0},
        plausible=(0.0, 100000.0),
        reference=(None, 14.0),
    ),
    # --- haematology -------------------------------------------------------------------------
    _analyte(
        "hemoglobin", "Hemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL",
        # 59260-0 (mmol/L) is recognised but its unit is NOT accepted: mmol/L hemoglobin is
        # counted per haem monomer (16.1 kg/mol, Dutch practice, x 1.611) or per tetramer
        # (64.5 kg/mol, x 6.45) depending on the laboratory, so no single factor is safe.
        other_loinc=("59260-0",),
        aliases=("haemoglobin", "hgb", "hb", "blood hemoglobin"),
        convert={"g/L": 0.1},
        plausible=(2.0, 25.0),
        reference=(12.0, 17.5),
    ),
    _analyte(
        "hematocrit", "Hematocrit", "4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%",
        other_loinc=("20570-8",),
        aliases=("haematocrit", "hct", "packed cell volume", "pcv"),
        convert={"L/L": 100.0},
        plausible=(5.0, 80.0),
        reference=(36.0, 50.0),
    ),
    _analyte(
        "white_blood_cells", "White blood cells", "6690-2", "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        other_loinc=("26464-8", "804-5"),  # unspecified method; manual count
        aliases=("wbc", "white blood cell count", "white cell count", "wcc", "leukocytes", "leucocytes",
                 "leukocyte count", "white blood cell"),
        convert={"10*9/L": 1.0, "/uL": 0.001},  # 10^9/L = 10^3/uL
        plausible=(0.01, 1000.0),
        reference=(4.0, 11.0),
    ),
    _analyte(
        "platelets", "Platelets", "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL",
        other_loinc=("26515-7",),
        aliases=("plt", "platelet count", "platelet", "thrombocytes", "thrombocyte count"),
        convert={"10*9/L": 1.0, "/uL": 0.001},
        plausible=(1.0, 3000.0),
        reference=(150.0, 400.0),
    ),
)

ANALYTES: dict[str, Analyte] = {a.name: a for a in _ANALYTE_LIST}
"""Canonical name -> analyte."""

CANONICAL_UNIT_BY_ANALYTE: dict[str, str] = {a.name: a.unit for a in _ANALYTE_LIST}
"""Canonical name -> canonical unit: the "known unit" of each analyte in a LABS frame."""

KNOWN_UNITS: frozenset[str] = frozenset(CANONICAL_UNIT_BY_ANALYTE.values())
"""Every canonical unit. A unit being here does not make it right for every analyte: check
``CANONICAL_UNIT_BY_ANALYTE[analyte]`` (hemoglobin reported in mmol/L has a known unit of the
wrong analyte)."""


# --- units ----------------------------------------------------------------------------------

_MICRO = str.maketrans({"\u00b5": "u", "\u03bc": "u"})  # micro sign and Greek mu
_SUPERSCRIPTS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", "0123456789")

# Lower-cased, blank-free spelling -> canonical spelling. The case of a UCUM unit matters
# (mL vs ML), but for the units laboratories report here lower-casing is unambiguous.
_UNIT_SPELLINGS: dict[str, str] = {
    "mg/dl": "mg/dL", "mg/100ml": "mg/dL", "mg%": "mg/dL",
    "g/dl": "g/dL", "g/100ml": "g/dL", "g%": "g/dL",
    "g/l": "g/L", "mg/l": "mg/L", "ug/l": "ug/L", "ng/l": "ng/L",
    "ug/ml": "ug/mL", "ng/ml": "ng/mL", "pg/ml": "pg/mL",
    "mol/l": "mol/L", "mmol/l": "mmol/L", "umol/l": "umol/L", "nmol/l": "nmol/L",
    "mmol/mol": "mmol/mol",
    "meq/l": "mEq/L",
    "u/l": "U/L", "iu/l": "U/L", "ui/l": "U/L", "units/l": "U/L",
    "ukat/l": "ukat/L", "nkat/l": "nkat/L",
    "%": "%", "percent": "%", "pct": "%",
    "l/l": "L/L", "fraction": "L/L",
    "k/ul": "10*3/uL", "thou/ul": "10*3/uL", "thous/ul": "10*3/uL", "thou/mm3": "10*3/uL", "thou/cumm": "10*3/uL",
    "/ul": "/uL", "cells/ul": "/uL", "/mm3": "/uL", "cells/mm3": "/uL", "/cumm": "/uL",
}

_POWER_OF_TEN = re.compile(r"^x?10(?:\*\*|\*|\^|e)(\d{1,2})(?:cells)?/(l|ul|mm3|cumm|nl)$")
_POWER_VOLUME = {"l": "L", "ul": "uL", "mm3": "uL", "cumm": "uL", "nl": "nL"}


def normalise_unit(unit: str | None) -> str | None:
    """Return the canonical spelling of a reported unit, or the unit stripped if it is not known.

    Case, blanks, the micro sign (``umol/L``, ``µmol/L``, ``μmol/L``, ``mcmol/L``) and the many
    ways of writing a power of ten (``10*9/L``, ``10^9/L``, ``x10E9/L``, ``10⁹/L``; ``K/uL``,
    ``/mm3``) are folded. ``None``, NaN and blank give ``None``.

    Examples
    --------
    >>> normalise_unit("µmol/l"), normalise_unit("x10E9/L"), normalise_unit("IU/L")
    ('umol/L', '10*9/L', 'U/L')
    """
    if unit is None or (isinstance(unit, float) and math.isnan(unit)):
        return None
    text = str(unit).strip().translate(_MICRO)
    if not text:
        return None
    text = re.sub(r"10([\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+)",
                  lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), text)
    text = re.sub(r"mc(?=g/|mol/)", "u", text)  # US "mcg", "mcmol"
    key = re.sub(r"\s+", "", text).lower().replace("\u00d7", "x")
    power = _POWER_OF_TEN.match(key)
    if power:
        exponent, volume = int(power.group(1)), _POWER_VOLUME[power.group(2)]
        return f"10*{exponent}/{volume}"
    return _UNIT_SPELLINGS.get(key, text)


# --- lookup ---------------------------------------------------------------------------------


def _name_key(name: str) -> str:
    """Fold a test name for comparison: lower case, every run of non-alphanumerics one blank."""
    return " ".join(re.split(r"[^0-9a-z]+", name.lower())).strip()


_BY_LOINC: dict[str, Analyte] = {code: a for a in _ANALYTE_LIST for code in a.loinc_codes}
_BY_NAME: dict[str, Analyte] = {}
for _a in _ANALYTE_LIST:
    for _alias in (_a.name, _a.label, _a.display, *_a.aliases):
        _BY_NAME.setdefault(_name_key(_alias), _a)
del _a, _alias


def analyte_for(loinc_code: str | None, name: str | None) -> Analyte | None:
    """Find the analyte a result reports: by any of its LOINC codes, else by name or alias.

    Parameters
    ----------
    loinc_code : a LOINC code such as ``"14682-9"``; blank or unknown codes fall through to the name.
    name : the reported test name; case, punctuation and blanks are ignored
        (``"C-Reactive Protein"`` finds ``c_reactive_protein``).

    Returns
    -------
    The analyte, or ``None`` when neither identifies one.
    """
    if isinstance(loinc_code, str) and loinc_code.strip() in _BY_LOINC:
        return _BY_LOINC[loinc_code.strip()]
    if isinstance(name, str) and name.strip():
        return _BY_NAME.get(_name_key(name))
    return None


def conversion_for(analyte: Analyte, unit: str | None) -> Conversion | None:
    """The conversion from a reported unit (any spelling) to the analyte's canonical unit, or ``None``."""
    spelled = normalise_unit(unit)
    return analyte.conversions.get(spelled) if spelled is not None else None


def to_canonical(analyte: Analyte, value: float, unit: str | None) -> float | None:
    """Convert one reported value to the analyte's canonical unit.

    Parameters
    ----------
    analyte : the analyte the value reports.
    value : the reported value, in ``unit``.
    unit : the reported unit, any spelling ``normalise_unit`` folds.

    Returns
    -------
    The value in ``analyte.unit``; NaN for a NaN value; ``None`` when the unit is not one the
    analyte accepts (hemoglobin in mmol/L, creatinine in U/L, a missing unit).

    Examples
    --------
    >>> round(to_canonical(ANALYTES["creatinine"], 88.42, "µmol/L"), 6)
    1.0
    """
    conversion = conversion_for(analyte, unit)
    if conversion is None:
        return None
    return float(conversion.apply(float(value)))


def guess_reported_unit(analyte: Analyte, values: Iterable[float], *, min_share: float = 0.5) -> str | None:
    """Guess the unit implausible values were really reported in, for the validation report.

    Parameters
    ----------
    analyte : the analyte the values claim to be, in ``analyte.unit``.
    values : values that fail ``analyte.plausible_range`` (NaN is ignored).
    min_share : the share of the values a unit must make plausible to be named.

    Returns
    -------
    The accepted unit (other than the canonical one) whose conversion brings the most values into
    the plausible range, if it brings at least ``min_share`` of them; else ``None``. For
    creatinine values around 80 it returns ``"umol/L"``: "values look like umol/L".
    """
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not finite:
        return None
    low, high = analyte.plausible_range
    best_unit, best_count = None, 0
    for unit, conversion in analyte.conversions.items():
        if unit == analyte.unit:
            continue
        count = sum(low <= conversion.apply(v) <= high for v in finite)
        if count > best_count:  # strict: on a tie the unit listed first (the commoner) wins
            best_unit, best_count = unit, count
    return best_unit if best_count >= min_share * len(finite) else None


def abnormal_flag(value: float, low: float | None, high: float | None) -> str | None:
    """``"L"`` below ``low``, ``"H"`` above ``high``, else ``"N"``; ``None`` for a NaN value or no bound.

    ``value``, ``low`` and ``high`` share one unit; a NaN or ``None`` bound is an open end.
    """
    value, low, high = (math.nan if x is None else float(x) for x in (value, low, high))
    if math.isnan(value) or (math.isnan(low) and math.isnan(high)):
        return None
    if value < low:  # comparisons with a NaN bound are False: an open end never flags
        return "L"
    if value > high:
        return "H"
    return "N"
