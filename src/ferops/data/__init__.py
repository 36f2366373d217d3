"""Face data sources and the on-disk contract between pipeline stages."""
