"""Workloads: job specs, distributions, arrival generators."""
