"""JSON Schema files, one per stream."""
