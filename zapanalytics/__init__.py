"""zapanalytics: audit and analyse EV-charging installations built on Zaptec chargers."""

__version__ = "0.1.0"
