"""Backfill: CoinCap's asset history into the warehouse, through Kafka, once.

A run-once job (``coinstream backfill``, or ``python -m coinstream backfill``): plan the windows
and their credit cost, ask, fetch each window into the history topic, note it in the ledger so
that a rerun spends nothing twice. docs/backfill.md tells the whole story.
"""

from services.backfill.job import (
    BackfillProgress,
    BackfillRequest,
    BackfillRequestError,
    BackfillSummary,
    ConfirmCallback,
    ProgressCallback,
    backfill,
    plan_backfill,
)
from services.backfill.ledger import BackfillAlreadyRunning, Ledger
from services.backfill.plan import BackfillPlan, CreditEstimate, Window

__all__ = [
    "BackfillAlreadyRunning",
    "BackfillPlan",
    "BackfillProgress",
    "BackfillRequest",
    "BackfillRequestError",
    "BackfillSummary",
    "ConfirmCallback",
    "CreditEstimate",
    "Ledger",
    "ProgressCallback",
    "Window",
    "backfill",
    "plan_backfill",
]
