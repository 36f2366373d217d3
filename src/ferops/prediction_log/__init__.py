"""The prediction log: every answer a served model (or `ferops predict --log`) gives, kept so
that production can be compared with what the model was evaluated on.

Below `inference` and `registry` (the served pyfunc writes it), above `imaging` (the face
statistics it records). The writer never blocks a request; readers skip damaged files by name.
"""
