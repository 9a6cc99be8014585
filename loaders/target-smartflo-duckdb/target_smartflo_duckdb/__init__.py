"""A Singer target for a DuckDB file, built on the Singer SDK's SQL target."""
