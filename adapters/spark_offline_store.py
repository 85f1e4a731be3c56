"""Feast's Spark offline store with the project's push log: live events pushed on a Spark repo.

Feast's Spark store appends a push to the source's Parquet file with Spark, which fails on a log
that does not exist yet and on a single file (Spark writes folders), and would store a redelivered
event twice. This store writes pushes as ``adapters.offline_store`` does (small parts of the log,
folded into its file in bulk) and folds them before Spark reads a log, so point-in-time retrieval
and materialization see every push. Everything else is Feast's Spark store.

Select it in ``deploy/feature_store.spark.yaml``::

    offline_store:
      type: adapters.spark_offline_store.SparkPushLogOfflineStore
      spark_conf: {...}

Importing this module needs pyspark (Feast's Spark store imports it).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from feast.feature_view import FeatureView
from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore, SparkOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.repo_config import RepoConfig
from pydantic import StrictStr

from adapters.offline_store import fold_push_logs, is_push_log, read_push_log, unwritten_push_log, write_push


class SparkPushLogOfflineStoreConfig(SparkOfflineStoreConfig):
    type: StrictStr = "adapters.spark_offline_store.SparkPushLogOfflineStore"


class SparkPushLogOfflineStore(SparkOfflineStore):
    """Feast's Spark offline store; pushes go to the project's push log (see the module)."""

    @staticmethod
    def offline_write_batch(config: RepoConfig, feature_view: FeatureView, table: pa.Table, progress) -> None:
        if not is_push_log(feature_view.batch_source):
            SparkOfflineStore.offline_write_batch(config, feature_view, table, progress)
            return
        write_push(config, feature_view, table, progress)

    read_push_log = staticmethod(read_push_log)

    @staticmethod
    def get_historical_features(config: RepoConfig, feature_views: list[FeatureView], feature_refs: list[str],
                                entity_df, registry, project: str, full_feature_names: bool = False,
                                **kwargs) -> RetrievalJob:
        fold_push_logs(feature_views, config.repo_path)
        return SparkOfflineStore.get_historical_features(config, feature_views, feature_refs, entity_df, registry,
                                                         project, full_feature_names, **kwargs)

    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source, join_key_columns: list[str],
                                        feature_name_columns: list[str], timestamp_field: str,
                                        created_timestamp_column: str | None, start_date: datetime,
                                        end_date: datetime) -> RetrievalJob:
        unwritten_push_log(config, data_source, join_key_columns)  # folds the log before Spark reads it
        return SparkOfflineStore.pull_latest_from_table_or_query(
            config, data_source, join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column,
            start_date, end_date)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source, join_key_columns: list[str],
                                     feature_name_columns: list[str], timestamp_field: str,
                                     created_timestamp_column: str | None = None, start_date: datetime | None = None,
                                     end_date: datetime | None = None) -> RetrievalJob:
        unwritten_push_log(config, data_source, join_key_columns)  # folds the log before Spark reads it
        return SparkOfflineStore.pull_all_from_table_or_query(
            config, data_source, join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column,
            start_date, end_date)

