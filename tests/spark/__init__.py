"""Fleet scale: the Parquet dataset and the engines (local and Spark)."""
