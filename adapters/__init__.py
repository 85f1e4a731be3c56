"""The edge kernel: Feast, MLflow, SQL and Spark, as both the pipelines and the online service use them.

Imports only the pure core (``features``, ``validation``, ``training``); never ``pipelines`` or
``serving``. Feast imports ``adapters.offline_store`` by the name ``feature_store.yaml`` gives it.
"""
