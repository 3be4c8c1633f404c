"""ml stage."""
