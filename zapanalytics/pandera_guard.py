"""Import pandera without the ``pyspark.pandas`` import it makes whenever pyspark is installed.

pandera's top-level import runs ``import pyspark.pandas`` to patch pandas for its own
pyspark backend. We validate polars frames only, and with pandas 3 that import prints a
FutureWarning on stderr at every start of the command line (measured with pyspark 4 and
pandera 0.35), which breaks the promise of one-line errors. Marking ``pyspark.pandas`` as
absent for the duration of pandera's import makes pandera skip it; the mark is removed
afterwards, so the Spark engine and a user's notebook can still import it.
"""

from __future__ import annotations

import sys


def import_pandera() -> None:
    """Import pandera once, with ``pyspark.pandas`` hidden while it loads."""
    if "pandera" in sys.modules:
        return
    hide = "pyspark.pandas" not in sys.modules
    if hide:
        sys.modules["pyspark.pandas"] = None  # type: ignore[assignment]  # "absent" to the import system
    try:
        import pandera  # noqa: F401
    finally:
        if hide and sys.modules.get("pyspark.pandas", False) is None:
            del sys.modules["pyspark.pandas"]


import_pandera()
