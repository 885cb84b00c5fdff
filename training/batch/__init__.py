"""Batch scoring of files larger than memory, partition by partition.

``files`` reads and writes partitions (CSV byte ranges, Parquet row groups) with the same
validation as the single-process path; ``engine`` runs them on a Dask cluster (the ``batch``
extra), one onnxruntime session per worker process.
"""
