"""Reference model of a Zaptec charger: control pilot, state machine, eMeter,
load-balancing allocator and an installation simulator.

This package stands alone: it never imports :mod:`zapanalytics`.
"""

__version__ = "0.1.0"
