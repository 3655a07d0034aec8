"""Trace loaders: public cluster traces (and your own CSV) as lazy job streams.

See :mod:`simcluster.workload.traces.core` (reading, order, bad rows),
:mod:`~simcluster.workload.traces.formats` (one parser per format) and
:mod:`~simcluster.workload.traces.api` (transforms, JobSpec conversion, tables).
"""

from simcluster.scenario_traces import read_nodes
from simcluster.workload.traces import formats as _formats  # noqa: F401 (registers formats)
from simcluster.workload.traces.api import (
    DEFAULT_MODEL,
    InferenceRequest,
    read_requests,
    read_trace,
    trace_format,
    trace_frame,
    trace_jobs,
    trace_rows,
)
from simcluster.workload.traces.core import TRACE_FORMATS, BadRow, TraceReport, TraceRow

__all__ = ["DEFAULT_MODEL", "TRACE_FORMATS", "BadRow", "InferenceRequest",
           "TraceReport", "TraceRow", "read_nodes", "read_requests", "read_trace",
           "trace_format", "trace_frame", "trace_jobs", "trace_rows"]
