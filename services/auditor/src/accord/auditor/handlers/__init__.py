"""The auditor's handlers: it records every event (recording)."""

from accord.auditor.handlers.recording import announcement, batch_route, entry_of, record_batch

__all__ = ["announcement", "batch_route", "entry_of", "record_batch"]
