"""Analytical performance models: model catalog, roofline, collective costs, iteration time."""
