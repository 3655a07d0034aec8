"""Scheduling policies: pure decisions over a read-only ClusterView (DESIGN.md section 3)."""
