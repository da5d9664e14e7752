"""Zaptec cloud API: client, sync, dump files, charge-history and state records."""
