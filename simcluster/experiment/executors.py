"""Where runs execute: any :class:`concurrent.futures.Executor`.

A run is a pure function of (resolved scenario, seed), so the executor changes only the wall
time, never the numbers. Choices:

- ``"local"`` (default): a process pool on this machine, one worker per core. On Linux the
  workers are forked, so policies registered in the calling process (a notebook cell) exist in
  them; elsewhere they are spawned and custom policies must live in an importable module.
- ``"serial"``: in this process, one run after another (debugging, tiny experiments).
- ``"dask"``: a ``dask.distributed`` cluster: the one at ``scheduler`` (``"tcp://host:8786"``),
  or a local one with ``workers`` processes. Needs the ``dask`` extra.
- an ``Executor`` you made (e.g. a ``ThreadPoolExecutor``), or a ``dask.distributed.Client``:
  used as is and not shut down.

>>> with open_executor("serial") as ex:
...     ex.submit(pow, 2, 10).result()
1024
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from simcluster.errors import UserError

__all__ = ["BACKENDS", "SerialExecutor", "open_executor"]

BACKENDS = ("local", "serial", "dask")


class SerialExecutor(Executor):
    """Runs each submitted call at once in the calling process; returns a finished future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # the future carries it, as a pool's future would
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and hasattr(obj, "get_executor")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UserError("the dask backend needs dask.distributed: "
                        "pip install 'simcluster[dask]'") from None
    return distributed


@contextlib.contextmanager
def open_executor(executor: Any = None, workers: int | None = None,
                  scheduler: str | None = None) -> Iterator[Executor]:
    """Yield a ``concurrent.futures`` executor for ``executor`` (see the module docstring).

    Args:
        executor: ``None``/``"local"``, ``"serial"``, ``"dask"``, an ``Executor`` or a Dask
            ``Client``.
        workers: worker processes for ``"local"`` and a local Dask cluster (default: cores).
        scheduler: address of a running Dask scheduler (implies ``"dask"``).

    Raises:
        UserError: an unknown backend name, a bad worker count, dask missing or unreachable.
    """
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: expected a positive number of workers")
    if scheduler is not None:
        if executor not in (None, "dask"):
            raise UserError(f"--scheduler {scheduler}: a scheduler address needs the dask "
                            f"backend, not {executor!r}")
        executor = "dask"
    if executor is None:
        executor = "local"
    if isinstance(executor, Executor):
        yield executor
        return
    if _is_dask_client(executor):
        yield executor.get_executor(pure=False)
        return
    if not isinstance(executor, str) or executor not in BACKENDS:
        raise UserError(f"backend {executor!r}: expected one of {', '.join(BACKENDS)}, "
                        "a concurrent.futures.Executor or a dask.distributed.Client")
    if executor == "serial":
        yield SerialExecutor()
    elif executor == "local":
        count = workers or os.cpu_count() or 1
        # fork on Linux: fast start, and policies registered in this process exist in workers
        method = "fork" if sys.platform.startswith("linux") else None
        pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context(method))
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        distributed = _import_distributed()
        with contextlib.ExitStack() as stack:
            if scheduler is not None:
                try:
                    client = stack.enter_context(distributed.Client(scheduler, timeout="10s"))
                except (OSError, TimeoutError) as err:
                    raise UserError(f"--scheduler {scheduler}: cannot connect ({err})") from None
            else:
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                    processes=True, host="127.0.0.1", dashboard_address=None))
                client = stack.enter_context(distributed.Client(cluster))
            yield client.get_executor(pure=False)
