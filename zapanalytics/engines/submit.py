"""``spark-submit`` entry point: the ``zapanalytics`` CLI on the session spark-submit made.

Example (see ``docs/scale.md``)::

    spark-submit --master spark://head:7077 zapanalytics/engines/submit.py \\
        bill --dataset /shared/zap-dataset --month 2025-10 --method spot --json

The session is created first, from spark-submit's own settings (master, executor memory
and cores), so the command's ``spark_session`` finds it running and uses it as it is;
``--engine spark`` is added when the arguments do not name an engine.
"""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str] | None = None) -> None:
    # spark-submit merges the driver's stderr into its stdout: keep the JSON clean of
    # pyspark's warning about the pandas version (pandas is not used on this path).
    warnings.filterwarnings("ignore", message="PySpark does not yet", category=FutureWarning)
    from pyspark.sql import SparkSession

    SparkSession.builder.getOrCreate()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--engine" not in arguments:
        arguments += ["--engine", "spark"]
    from zapanalytics.cli import main as cli

    sys.argv = ["zapanalytics", *arguments]
    cli()


if __name__ == "__main__":
    main()
