"""After deployment: served answers compared with the reference their model was evaluated on."""
