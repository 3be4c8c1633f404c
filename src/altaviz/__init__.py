"""Altaviz: predictive maintenance for industrial equipment fleets.

Stages in flow order: simulate -> lake (bronze/silver/gold) -> ml -> monitor -> serve (db, api) -> dashboard,
with profiles (the declarative asset spec) and engines (renderers of that spec) beside them.
"""

__version__ = "0.1.0"
