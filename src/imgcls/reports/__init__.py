"""Figures, tables and files written from a run's results."""
