"""Meter audits: OCMF signatures, register integrity, accuracy against reference meters.

Pure functions on polars frames with the store's column names; the CLI and the report
call the same functions.

Modules
-------
ocmf
    Parse and verify OCMF signed meter records (``parse``, ``verify``, ``verify_many``);
    built on ``ocmf_parse`` (records), ``ocmf_crypto`` (algorithms, keys) and
    ``ocmf_transaction`` (begin/end, status and clock checks).
signed
    Every signed record in the store's sessions and charger states, read and verified.
integrity
    Register and session consistency findings (resets, rollovers, gaps, energy
    mismatches); ``evidence`` adds signature, clock and duplicate findings.
accuracy
    Each charger's register against its sub-meter, windowed by current band;
    ``accuracy_verdicts`` judges the bands against ``limits`` (±1 % claim, EN 50470-3,
    MID).
regression
    Each charger's gain error from the installation's HAN meter, with no sub-meter, the
    HAN meter's own class limit in every interval; ``regression_hours`` builds the
    hourly energies it fits.
store_audit
    The whole audit of a store as data (frames and a JSON-ready dict); the HTML report
    is built from it by :mod:`zapanalytics.report.audit_section`.
limits
    The ±1 % claim, EN 50470-3 and MID limits, the guard-banded decision rule, and a
    meter's class as a standard uncertainty.
"""
