"""rul models."""
