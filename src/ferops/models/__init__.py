"""Emotion classifiers, chosen by name from one registry (`ferops.models.registry`)."""
