"""The Delta Lake medallion: bronze (raw + lineage), silver (validated), quarantine, gold (features)."""
