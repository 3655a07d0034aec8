"""Regenerate the built-in workload presets (simcluster/workload/presets/*.json) from the traces.

Usage:
    .venv/bin/python scripts/fit_presets.py DATA_DIR [--out simcluster/workload/presets]

DATA_DIR has the layout of ``../shared/data/traces`` (``philly_rfold/philly_trace.csv``,
``philly_pollux/philly.csv``, ``alibaba_pai_v2023_openb/openb_pod_list_default.csv``). The fit is
deterministic: rerunning on the same files rewrites identical presets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from simcluster.workload.fit import PRESET_DIR, fit, save_preset
from simcluster.workload.traces import trace_frame

# name -> (trace format, file under DATA_DIR, note)
PRESETS = {
    "philly": ("philly_rfold", "philly_rfold/philly_trace.csv",
               "Microsoft Philly (Jeon et al., ATC'19) as flattened by RFold: 111,549 jobs over "
               "129 days. Arrival times are relative to the first job and its clock time is not "
               "given: time 0 is taken as Monday 00:00, so the hour-of-day and weekday factors "
               "are phases relative to the trace start."),
    "philly_pollux": ("philly_pollux", "philly_pollux/philly.csv",
                      "Microsoft Philly as flattened by the Pollux (OSDI'21) artifact: 82,247 "
                      "jobs, 2017-09-04..2017-12-22, submit times in the cluster's local time; "
                      "tenants are the 15 hashed virtual clusters."),
    "openb": ("openb_pods", "alibaba_pai_v2023_openb/openb_pod_list_default.csv",
              "Alibaba GPU-sharing cluster 2023 (openb default pods; Weng et al., ATC'23): GPU "
              "pods only (CPU-only pods dropped); a 1-GPU pod's size is its gpu_milli/1000; run "
              "time = deletion - scheduled (creation if never scheduled); tenants are the QoS "
              "classes. Creation times are seconds from the trace start, whose clock time is "
              "not given (taken as Monday 00:00). Most pods are created near the end of the "
              "window (a snapshot of live pods), so the mean rate understates the late rate."),
}


def trace(fmt: str, path: Path) -> tuple[pd.DataFrame, float]:
    """The jobs of a trace (``trace_frame``: submit_s from the first submission, gpus,
    run_time_s, tenant) and the position of its time 0 in the week (s after Monday 00:00)."""
    frame = trace_frame(fmt, path)
    origin = 0.0
    if fmt == "philly_pollux":  # local clock times: time 0 is the earliest of them
        first = pd.to_datetime(pd.read_csv(path, usecols=["timestamp"])["timestamp"]).min()
        origin = (first - first.normalize()).total_seconds() + first.weekday() * 86400.0
    return frame, origin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=PRESET_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (fmt, rel, note) in PRESETS.items():
        path = args.data_dir / rel
        if not path.exists():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        frame, origin = trace(fmt, path)
        f = fit(frame, name=name, source=f"{fmt}: {rel}", origin_s=origin, note=note)
        out = save_preset(f, args.out / f"{name}.json")
        print(f"{name}: {f.jobs} jobs, {f.rate_per_s * 86400:.1f}/day, "
              f"{len(f.classes)} size classes -> {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
