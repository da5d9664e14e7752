"""Day-ahead spot prices (hvakosterstrommen.no, ENTSO-E)."""
