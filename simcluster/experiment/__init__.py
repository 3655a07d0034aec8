"""Running scenarios: single runs now; replications, sweeps and capacity search later."""
