"""ferops: reproducible facial-emotion-recognition pipelines, tracked and served."""

__version__ = "0.1.0"
