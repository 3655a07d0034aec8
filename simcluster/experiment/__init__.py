"""Running scenarios: single runs, replications, sweeps on executors, capacity search."""
