"""Imaging: decoding any image, cropping and resizing to a 48x48 grey face, finding faces, and
the contrast normalisation (a typed Preprocessing value) every model carries."""
