"""The served model as code (MLflow's models-from-code): MLflow runs this file when it loads
the model, so the registry holds ferops' source, never a pickled object."""

import mlflow.models

from ferops.registry.pyfunc import EmotionClassifier

mlflow.models.set_model(EmotionClassifier())
