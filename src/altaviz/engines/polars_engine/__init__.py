"""engines/polars_engine stage."""
