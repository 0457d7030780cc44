"""Lifecycle workflows as code (issue 22): definitions, triggers, tasks and their ports."""
