"""Reviewed production faces: exported for review, imported as data with their provenance."""
