"""``python -m zapanalytics`` runs the console script."""

from zapanalytics.cli import main

main()
