"""An installation for sources that do not name one (an OCPP-only site, a portal export).

Zaptec's cloud reports installations; an OCPP central system and a portal export do not.
Billing, the audit and the replay need one (its time zone, its price area), so these steps
create it from what the owner says and file the chargers and sessions that have none under it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import polars as pl

from zapanalytics.store.upsert import upsert

#: Namespace of the installation ids made here: the same name always gives the same id.
SITE_NAMESPACE = uuid.UUID("6f1d8d3e-5a39-4f57-9a63-1c3f0f6b2a11")


def site_installation_id(name: str) -> str:
    """A stable installation id for a site known only by its name."""
    return str(uuid.uuid5(SITE_NAMESPACE, name.strip().lower()))


def check_timezone(timezone: str) -> str:
    """``timezone`` if it is an IANA zone name; ValueError otherwise."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{timezone!r} is not an IANA time zone (e.g. Europe/Oslo)") from None
    return timezone


def ensure_installation(
    con: duckdb.DuckDBPyConnection,
    installation_id: str,
    *,
    name: str | None,
    timezone: str,
    price_area: str | None,
    source: str,
    main_fuse_a: float | None = None,
    network_type: str | None = None,
) -> bool:
    """Create the installation row unless it exists; return whether it was created.

    An existing row is left as it is (the cloud's description wins over an owner's guess).
    ``main_fuse_a`` [A] and ``network_type`` (``TN``/``IT``) let the replay run.
    """
    check_timezone(timezone)
    exists = con.execute(
        "SELECT count(*) FROM installations WHERE installation_id = ?", [installation_id]
    ).fetchone()[0]
    if exists:
        return False
    row = pl.DataFrame(
        [
            {
                "installation_id": installation_id,
                "name": name,
                "timezone": timezone,
                "price_area": price_area,
                "main_fuse_a": main_fuse_a,
                "network_type": network_type,
                "source": source,
                "ingested_at": dt.datetime.now(dt.UTC),
            }
        ],
        schema={
            "installation_id": pl.String,
            "name": pl.String,
            "timezone": pl.String,
            "price_area": pl.String,
            "main_fuse_a": pl.Float64,
            "network_type": pl.String,
            "source": pl.String,
            "ingested_at": pl.Datetime("us", "UTC"),
        },
    )
    upsert(con, "installations", row, on_conflict="ignore")
    return True


def adopt_orphans(con: duckdb.DuckDBPyConnection, installation_id: str) -> dict[str, int]:
    """File chargers and sessions without an installation under ``installation_id``.

    A session without one takes its charger's installation when the charger has one.
    Returns the rows changed per table; a second call changes nothing.
    """
    changed = {}
    con.execute("BEGIN TRANSACTION")
    try:
        changed["chargers"] = con.execute(
            "UPDATE chargers SET installation_id = ? WHERE installation_id IS NULL",
            [installation_id],
        ).fetchone()[0]
        changed["sessions"] = con.execute(
            "UPDATE sessions SET installation_id = coalesce("
            " (SELECT c.installation_id FROM chargers c WHERE c.charger_id = sessions.charger_id), ?)"
            " WHERE installation_id IS NULL",
            [installation_id],
        ).fetchone()[0]
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return changed


def users_from_id_tags(con: duckdb.DuckDBPyConnection, installation_id: str) -> int:
    """Bill an OCPP-only site per RFID token: ``user_id = 'idtag:<idTag>'`` where none is known.

    A central system knows the token (``token_name``, the OCPP idTag) but no user behind it;
    without this every charging would be billed to one unknown user. Returns the rows changed.
    """
    return con.execute(
        "UPDATE sessions SET user_id = 'idtag:' || token_name"
        " WHERE installation_id = ? AND source = 'ocpp' AND user_id IS NULL"
        " AND token_name IS NOT NULL AND token_name <> ''",
        [installation_id],
    ).fetchone()[0]
