"""Transaction ids the central system hands out, and how it remembers them across restarts.

An id is ``max(largest id in the spool + 1, seconds since 2020-01-01)``, so ids never
repeat across restarts, nor after a spool is archived and a fresh one started. A
StartTransaction retried with the same content (a charge point that lost our answer) gets
the id it was given before, so one charging never becomes two transactions.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zapanalytics.ingest.spool import iter_lines, list_segments

#: Transaction ids are at least the seconds since this instant, so a fresh spool never
#: reissues an id an earlier spool handed out.
TRANSACTION_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
#: Retry keys remembered; a retry arrives within seconds, so the newest ten thousand suffice.
RECENT_STARTS_KEPT = 10_000


def start_transaction_key(charge_point_id: str, payload: Mapping[str, Any]) -> tuple:
    """What makes two StartTransaction calls the same transaction (a retry)."""
    return (
        charge_point_id,
        payload.get("connectorId"),
        payload.get("idTag"),
        payload.get("meterStart"),
        payload.get("timestamp"),
    )


def recover_transactions(spool_dir: str | Path) -> tuple[int, dict[tuple, int]]:
    """Find the transaction ids the spool already handed out.

    Scans segments from the newest back to the first one that holds a StartTransaction
    answer, and returns the largest id plus the retry keys of the starts it saw.
    """
    largest = 0
    starts: dict[tuple, int] = {}
    for segment in reversed(list_segments(spool_dir)):
        for _, line in iter_lines(spool_dir, segment.index):
            if b"StartTransaction" not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                record = json.loads(line)
                frame = json.loads(record["message"])
                reply = json.loads(record["reply"])
                if frame[0] == 2 and frame[2] == "StartTransaction" and reply[0] == 3:
                    transaction_id = int(reply[2]["transactionId"])
                    largest = max(largest, transaction_id)
                    starts[start_transaction_key(record["charge_point_id"], frame[3])] = transaction_id
        if largest:
            break
    return largest, starts


class TransactionIds:
    """Issues transaction ids; a retried StartTransaction gets its earlier id back."""

    def __init__(self) -> None:
        self.next_id = 1
        self._recent_starts: collections.OrderedDict[tuple, int] = collections.OrderedDict()

    def recover(self, spool_dir: str | Path, now: dt.datetime) -> None:
        """Continue after the ids a spool already holds, and never below the epoch floor."""
        last_id, starts = recover_transactions(spool_dir)
        floor = int((now - TRANSACTION_EPOCH).total_seconds())
        self.next_id = max(last_id + 1, floor, 1)
        self._recent_starts.update(starts)

    def issue(self, charge_point_id: str, payload: Mapping[str, Any]) -> int:
        """The id for this StartTransaction: the earlier one for a retry, else a new one."""
        key = start_transaction_key(charge_point_id, payload)
        transaction_id = self._recent_starts.get(key)
        if transaction_id is None:
            transaction_id = self.next_id
            self.next_id += 1
            self._recent_starts[key] = transaction_id
            while len(self._recent_starts) > RECENT_STARTS_KEPT:
                self._recent_starts.popitem(last=False)
        return transaction_id
