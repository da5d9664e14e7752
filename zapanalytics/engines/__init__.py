"""Engines that run the analyses' kernels over a Parquet dataset: locally or on Spark.

* :mod:`~zapanalytics.engines.kernels` — billing, audit and replay as Arrow-in, Arrow-out
  kernels, one group (installation, charger, installation-month) at a time.
* :mod:`~zapanalytics.engines.local` — a loop over the groups on this machine.
* :mod:`~zapanalytics.engines.spark` — ``groupBy(...).applyInArrow`` on a Spark cluster.
* :mod:`~zapanalytics.engines.cli` — the ``--dataset``/``--engine`` options of the commands.

Both engines hand each kernel the same rows, so their results are equal (tested in
``tests/spark``).
"""
