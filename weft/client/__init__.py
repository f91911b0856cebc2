"""The Python API: everything the CLI does, as functions that return data."""
