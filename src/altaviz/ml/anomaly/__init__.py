"""anomaly models."""
