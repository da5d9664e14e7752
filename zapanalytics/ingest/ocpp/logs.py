"""OCPP message logs written into a spool, as the server would have spooled them.

``firmware_ref`` (and a charge point's own logs) keep OCPP traffic as JSON lines per
message; :func:`spool_from_message_logs` pairs each charge-point CALL with its logged
answer and writes the spool lines :func:`zapanalytics.ingest.ocpp.load.load_spool` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from zapanalytics.ingest.ocpp.records import parse_utc


def spool_from_message_logs(log_paths: Iterable[str | Path], spool_dir: str | Path) -> int:
    """Write OCPP message logs into a spool, as the server would have spooled them.

    Parameters
    ----------
    log_paths : iterable of path
        JSON lines ``{"ts", "charge_point_id", "direction", "message"}`` with directions
        ``cp_to_cs`` and ``cs_to_cp`` (``firmware_ref``'s ``ocpp/<ChargePointId>.jsonl``).
    spool_dir : str or Path
        A new or existing spool directory (appended to).

    Returns
    -------
    int
        Spool lines written: one per charge-point CALL (with the logged answer as its
        reply) and one per central-system CALL.
    """
    from zapanalytics.ingest.spool import SegmentWriter, encode_record

    written = 0
    with SegmentWriter(spool_dir) as writer:
        for path in log_paths:
            entries = []
            answers: dict[tuple[str, str, str], str] = {}
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    entry = json.loads(line)
                    frame = entry["message"]
                    text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
                    parsed = json.loads(text) if isinstance(frame, str) else frame
                    entries.append((entry, text, parsed))
                    if parsed and parsed[0] in (3, 4):
                        answers[(entry["charge_point_id"], entry["direction"], str(parsed[1]))] = text
            batch = []
            for entry, text, parsed in entries:
                if not parsed or parsed[0] != 2:
                    continue
                cp, direction = entry["charge_point_id"], entry["direction"]
                ts = parse_utc(str(entry["ts"]).replace("Z", "+00:00"), "ts").isoformat(timespec="microseconds")
                if direction == "cs_to_cp":
                    batch.append(encode_record({"ts": ts, "charge_point_id": cp, "direction": "out", "message": text}))
                    continue
                record = {"ts": ts, "charge_point_id": cp, "direction": "in", "message": text}
                reply = answers.get((cp, "cs_to_cp", str(parsed[1])))
                if reply is not None:
                    record["reply"] = reply
                batch.append(encode_record(record))
            if batch:
                writer.write_batch(batch)
                written += len(batch)
    return written
