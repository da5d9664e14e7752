"""What every price reader shares: the market zone, source names, the parse result and its error."""

from __future__ import annotations

import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

from zapanalytics.ingest.door import Rejection

SOURCE_HVAKOSTERSTROMMEN = "hvakosterstrommen"
SOURCE_ENTSOE = "entsoe"
#: Nordic delivery days run from local midnight to local midnight in this zone.
MARKET_ZONE = ZoneInfo("Europe/Oslo")


class PriceFileError(ValueError):
    """A price document that cannot be read at all."""


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedPrices:
    """Source records of one document, the rows they gave, and the ones refused."""

    records: list[str]
    rows: list[dict[str, Any]]
    rejected: list[Rejection]
    skipped_points: int = 0
