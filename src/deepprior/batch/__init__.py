"""Batch restoration of whole folders: resumable, crash-safe, on local worker processes or a Ray cluster.

- :mod:`~deepprior.batch.discover`: which files are inputs, their masks, where outputs go;
- :mod:`~deepprior.batch.manifest`: the SQLite record of every item's state;
- :mod:`~deepprior.batch.worker`: restoring one item, in any process;
- :mod:`~deepprior.batch.pool` and :mod:`~deepprior.batch.ray_pool`: where items run;
- :mod:`~deepprior.batch.driver`: the loop that ties them together.
"""
from deepprior.batch.driver import BatchConfig, BatchError, BatchSummary, run_batch, status_report, verify_batch

__all__ = ["BatchConfig", "BatchError", "BatchSummary", "run_batch", "status_report", "verify_batch"]
