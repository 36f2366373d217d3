"""Registry: the promotion gate, the served pyfunc, publishing a model version to MLflow, and
registering the shipped model."""
