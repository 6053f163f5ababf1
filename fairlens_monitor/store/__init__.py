"""Persistence: SQLAlchemy models, engines and the repository (the **log** step's I/O edge)."""
