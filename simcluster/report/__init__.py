"""Pictures and the run report: read results (tables), never the engine."""
