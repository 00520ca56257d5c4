"""Shared, process-wide cached objects for the split test modules (models export once)."""
