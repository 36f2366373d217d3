"""Models: the variants (string-keyed builders), attention blocks, precision policy, and the
shipped pretrained FER2013 model."""
