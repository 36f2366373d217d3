"""The project folder as installed: offline copies of the web scripts its HTML reports load
(`web_assets`, fetched by `make install`), and what `ferops relocate` repairs after the folder
is copied or moved: its .venv and DVC's local config (`moved_venv`) and the MLflow store's
recorded artifact locations (`moved_store`)."""
