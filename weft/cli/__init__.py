"""The ``weft`` command line (click); the only package that renders with rich."""
