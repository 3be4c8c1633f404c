"""serve/db stage."""
