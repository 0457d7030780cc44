"""Authoritative sources: HR exports, HR databases and directories become identity events.

The pure core for now (read, map, diff, judge, build events); the service that schedules
runs, keeps the state in PostgreSQL and publishes through the outbox comes next.
"""
