"""The SimPy world: simulation, cluster state, scheduler, job processes."""
