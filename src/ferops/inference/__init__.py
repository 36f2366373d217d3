"""Inference: running a model file (Keras, ONNX, LiteRT), resolving which model to run, export,
and emotions in photos and video. The ONNX path imports neither TensorFlow nor scikit-learn."""
