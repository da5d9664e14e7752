"""Meter audits: OCMF signatures, register integrity, accuracy against reference meters.

Modules
-------
ocmf
    Parse and verify OCMF signed meter records (``parse``, ``verify``, ``verify_many``).
integrity
    Register and session consistency findings over the store's tables.
accuracy
    Each charger's register against its sub-meter, windowed by current band and judged
    against the ±1 % claim and the MID / EN 50470-3 limits.
regression
    Each charger's gain error estimated from the installation's HAN meter, with no
    dedicated sub-meter.
"""
