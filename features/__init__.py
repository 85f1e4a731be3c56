"""PURE. The biomarkers: their computations (``biomarkers``), the tables they fill with each column
described once (``tables``), and the Feast entities, views and services over a study's tables
(``definitions``). Imports nothing of the project; importing it has no side effects (Feast imports it)."""
