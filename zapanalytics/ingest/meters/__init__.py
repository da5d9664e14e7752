"""Reference meters: AMS/HAN frames and MID sub-meter readings."""
