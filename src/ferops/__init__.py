"""ferops: reproducible facial-emotion-recognition pipelines, tracked and served."""

__version__ = "0.1.0"

import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) buries our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
