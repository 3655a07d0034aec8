"""Validation: every model compared with an outside reference, by one command (``validate``)."""
