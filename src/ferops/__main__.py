"""`python -m ferops`: the `ferops` command, for when its entry point is not usable (a copied
project's `.venv/bin/ferops` runs the original folder's interpreter until `make relocate`)."""

from ferops.cli import app

app()
