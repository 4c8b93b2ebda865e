"""Plots, galleries and (later) layer analysis."""
