"""Ingestion: one module per source, all entering the store through :mod:`.door`."""
