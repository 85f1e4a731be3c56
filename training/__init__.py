"""PURE. Splits, estimators (scikit-learn; PyTorch behind an sklearn-style wrapper), fit-and-evaluate,
metrics and their confidence intervals, acceptance criteria, model cards, the task registry (endpoint,
anomaly) and the scoring function that batch, the HTTP API and the stream share. May import names
from ``features``; nothing else."""
