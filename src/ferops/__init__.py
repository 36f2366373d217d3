"""ferops: reproducible facial-emotion-recognition pipelines, tracked and served.

The Python API is `ferops.api`; nothing is imported here, so that a pipeline stage depends on
(and reruns for) only the code it runs."""

__version__ = "0.1.0"
