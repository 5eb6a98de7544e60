"""Cloud sync (boto3): batches of results from the outbox to S3 as gzipped JSON Lines, indexed
in DynamoDB (:mod:`core.cloud.sync`). Needs the ``cloud`` extra."""

from __future__ import annotations

from core.cloud.config import CloudBatchConfig, CloudSyncConfig

__all__ = ["CloudBatchConfig", "CloudSyncConfig"]
