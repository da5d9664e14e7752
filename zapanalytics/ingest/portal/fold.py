"""An installation made from a portal export folds into the cloud's once the cloud reports it.

An owner without API access starts from the portal export, which makes an installation of
its own (:mod:`~zapanalytics.ingest.portal.source`, ``source = 'portal'``, chargers named by
serial or ``portal:<name>``). When the same owner later syncs the cloud (or loads an API
dump), the cloud reports the same chargers under its own installation id. Left alone the
store would hold the site twice: two installations, each billed on its own, the chargings
only the export lists on one and the rest on the other, the grid tariff's capacity step and
the strømstøtte cap worked out for each half. So each cloud ingestion ends by folding every
portal installation whose chargers the cloud reports (same serial; the same name where the
export gave no serial) into the cloud's installation:

* every row that names one of its chargers the cloud reports (portal and OCPP sessions,
  meter values, states, reference readings) names the cloud's charger instead, as the
  portal reader and the OCPP loader do on a store that knows the cloud's chargers; portal
  sessions whose id was made from charger, start and energy take the id reading the export
  on a cloud-first store gives, so re-reading the export afterwards adds nothing;
* its chargers the cloud reports are removed; any other charger, and every other row filed
  under it, moves to the cloud's installation;
* what the owner set on it and the cloud leaves empty (price area, county, grid company,
  Norgespris, dwellings, …) carries over; the cloud's own values win;
* statements issued under it stay as issued, under its id.

The store is then the one the same sources give when the cloud comes first, and a second
fold finds nothing. A portal installation whose chargers the cloud reports in several
installations, or whose charger name matches several cloud chargers, is not folded; the
fold says why, and the owner can export per installation.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import duckdb
import polars as pl

from zapanalytics.ingest.portal.source import SOURCE, hashed_session_id

LOG = logging.getLogger(__name__)
#: Sources that write the cloud's own installations and chargers.
CLOUD_SOURCES = ("zaptec_api", "zaptec_files")
#: Installation columns that identify or describe the row itself: never carried over.
_OWN_COLUMNS = frozenset({"installation_id", "name", "timezone", "source", "ingested_at"})
#: Tables keyed by installation that keep the portal id: issued statements are documents as
#: sent, and the sync state belongs to the cloud's installations only.
_KEPT_TABLES = frozenset({"installations", "issued_statements", "zaptec_sync_state"})


@dataclasses.dataclass(frozen=True)
class PortalFold:
    """One portal installation the cloud reports: folded, or why not."""

    portal_installation_id: str
    name: str | None
    cloud_installation_id: str | None = None
    sessions_moved: int = 0
    sessions_renamed: int = 0
    chargers_removed: int = 0
    chargers_moved: int = 0
    other_rows_moved: int = 0
    statements_kept: int = 0
    refused: str | None = None

    @property
    def folded(self) -> bool:
        return self.cloud_installation_id is not None and self.refused is None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _key(column: str) -> pl.Expr:
    text = pl.col(column).str.strip_chars().str.to_lowercase()
    return pl.when(text != "").then(text)


def match_chargers(portal: pl.DataFrame, cloud: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Pair a portal installation's chargers with the cloud's (pure).

    Parameters
    ----------
    portal : polars.DataFrame
        ``charger_id, device_id, name`` of the portal installation's chargers.
    cloud : polars.DataFrame
        ``charger_id, device_id, name, installation_id`` of the cloud's chargers.

    Returns
    -------
    (polars.DataFrame, str or None)
        ``portal_charger_id, cloud_charger_id, cloud_installation_id`` for every portal
        charger the cloud reports, and the reason the installation cannot be folded (None
        when it can, or when nothing matches).
    """
    portal = portal.with_columns(serial=_key("device_id"), name_key=_key("name"))
    cloud = cloud.with_columns(serial=_key("device_id"), name_key=_key("name"))
    pairs_schema = {
        "portal_charger_id": pl.String,
        "cloud_charger_id": pl.String,
        "cloud_installation_id": pl.String,
    }
    by_serial = portal.filter(pl.col("serial").is_not_null()).join(
        cloud.filter(pl.col("serial").is_not_null()), on="serial", suffix="_cloud"
    )
    targets = set(by_serial["installation_id"].to_list())
    # A charger the export names without a serial is matched by name, within the cloud
    # installation the serials point to when there is one.
    named = portal.filter(pl.col("serial").is_null() & pl.col("name_key").is_not_null())
    candidates = cloud.filter(pl.col("installation_id").is_in(list(targets))) if targets else cloud
    by_name = named.join(
        candidates.filter(pl.col("name_key").is_not_null()), on="name_key", suffix="_cloud"
    )
    pairs = pl.concat(
        [
            frame.select(
                pl.col("charger_id").alias("portal_charger_id"),
                pl.col("charger_id_cloud").alias("cloud_charger_id"),
                pl.col("installation_id").alias("cloud_installation_id"),
            )
            for frame in (by_serial, by_name)
        ]
    ).cast(pairs_schema)
    if pairs.is_empty():
        return pairs, None
    doubled = pairs.group_by("portal_charger_id").len().filter(pl.col("len") > 1)
    if not doubled.is_empty():
        names = ", ".join(sorted(doubled["portal_charger_id"].to_list()))
        return pairs.clear(), f"the cloud reports several chargers for {names}"
    installations = sorted(set(pairs["cloud_installation_id"].to_list()))
    if len(installations) > 1:
        return pairs.clear(), (
            f"its chargers are in {len(installations)} cloud installations ({', '.join(installations)})"
        )
    return pairs.sort("portal_charger_id"), None


def renamed_sessions(sessions: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """The portal sessions on a paired charger whose id changes with the charger (pure).

    A session whose id is the hash of its charger, start and energy
    (:func:`~zapanalytics.ingest.portal.source.hashed_session_id`) gets the hash with the
    cloud charger; one whose id came from the export keeps it and is not listed.

    Returns
    -------
    polars.DataFrame
        ``old_session_id, new_session_id, cloud_charger_id``.
    """
    cloud_of = dict(zip(pairs["portal_charger_id"], pairs["cloud_charger_id"], strict=True))
    rows = []
    # The hash was made of the start as aware UTC; read it back the same way.
    starts = pl.col("start_utc").dt.convert_time_zone("UTC")
    for session_id, charger_id, start, energy in sessions.select(
        "session_id", "charger_id", starts, "energy_kwh"
    ).iter_rows():
        cloud_charger = cloud_of.get(charger_id)
        if cloud_charger is None:
            continue
        if session_id == hashed_session_id(charger_id, start, energy):
            rows.append((session_id, hashed_session_id(cloud_charger, start, energy), cloud_charger))
    return pl.DataFrame(
        rows,
        schema={
            "old_session_id": pl.String,
            "new_session_id": pl.String,
            "cloud_charger_id": pl.String,
        },
        orient="row",
    )


def fold_portal_installations(con: duckdb.DuckDBPyConnection) -> list[PortalFold]:
    """Fold every portal installation the cloud now reports into the cloud's installation.

    Each fold is one transaction. Returns one :class:`PortalFold` per portal installation
    the cloud reports (folded, or refused with the reason); an empty list when there is
    nothing to fold, as on a second call.
    """
    folds = []
    portal_installations = con.execute(
        "SELECT installation_id, name FROM installations WHERE source = ? ORDER BY installation_id",
        [SOURCE],
    ).fetchall()
    if not portal_installations:
        return folds
    cloud = con.sql(
        "SELECT c.charger_id, c.device_id, c.name, c.installation_id FROM chargers c"
        " JOIN installations i USING (installation_id)"
        " WHERE list_contains($cloud, c.source) AND list_contains($cloud, i.source)",
        params={"cloud": list(CLOUD_SOURCES)},
    ).pl()
    if cloud.is_empty():
        return folds
    for portal_id, name in portal_installations:
        portal = con.sql(
            "SELECT charger_id, device_id, name FROM chargers WHERE installation_id = ?",
            params=[portal_id],
        ).pl()
        pairs, refused = match_chargers(portal, cloud)
        if refused is not None:
            fold = PortalFold(portal_id, name, refused=refused)
            LOG.warning("installation %r (from a portal export) not folded: %s", name, refused)
        elif pairs.is_empty():
            continue
        else:
            fold = _fold(con, portal_id, name, pairs)
            LOG.warning(
                "installation %r (from a portal export) is the cloud's installation %s: "
                "%d sessions and %d chargers now filed under it",
                name,
                fold.cloud_installation_id,
                fold.sessions_moved,
                fold.chargers_moved + fold.chargers_removed,
            )
        folds.append(fold)
    return folds


def _tables_with(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, list[str]]:
    """Base tables with ``column``, each with its primary-key columns (from the catalogue)."""
    rows = con.execute(
        "SELECT c.table_name, k.constraint_column_names FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " LEFT JOIN duckdb_constraints() k ON k.table_name = c.table_name"
        "  AND k.constraint_type = 'PRIMARY KEY'"
        " WHERE c.column_name = ? AND t.table_type = 'BASE TABLE'"
        " AND c.table_schema = current_schema() ORDER BY 1",
        [column],
    ).fetchall()
    return {table: list(key or []) for table, key in rows}


def _fold(
    con: duckdb.DuckDBPyConnection, portal_id: str, name: str | None, pairs: pl.DataFrame
) -> PortalFold:
    cloud_id = pairs["cloud_installation_id"][0]
    sessions = con.sql(
        "SELECT session_id, charger_id, start_utc, energy_kwh FROM sessions"
        " WHERE installation_id = ? AND source = ?",
        params=[portal_id, SOURCE],
    ).pl()
    moved = renamed_sessions(sessions, pairs)
    carried = [
        r[0] for r in con.execute("DESCRIBE installations").fetchall() if r[0] not in _OWN_COLUMNS
    ]
    charger_tables = {
        t: key
        for t, key in _tables_with(con, "charger_id").items()
        if t not in ("chargers", "sessions")
    }
    installation_tables = [
        t
        for t in _tables_with(con, "installation_id")
        if t not in _KEPT_TABLES | {"chargers", "sessions"}
    ]
    renames = f"_fold_renames_{uuid.uuid4().hex}"
    paired = f"_fold_pairs_{uuid.uuid4().hex}"
    con.register(renames, moved.to_arrow())
    con.register(paired, pairs.to_arrow())
    counts: dict[str, int] = {}
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            # Portal sessions whose id was made from their charger: the new row first (unless
            # the export was already read on the cloud's chargers and the row is there), links
            # to it, then the old row goes.
            counts["renamed"] = con.execute(
                f"""INSERT INTO sessions
                SELECT s.* REPLACE (m.new_session_id AS session_id, m.cloud_charger_id AS charger_id,
                                    $cloud AS installation_id)
                FROM sessions s JOIN {renames} m ON s.session_id = m.old_session_id
                WHERE m.new_session_id NOT IN (SELECT session_id FROM sessions)
                QUALIFY row_number() OVER (PARTITION BY m.new_session_id ORDER BY s.session_id) = 1""",  # noqa: S608
                {"cloud": cloud_id},
            ).fetchone()[0]
            con.execute(
                f"UPDATE sessions SET canonical_session_id = m.new_session_id FROM {renames} m"  # noqa: S608
                " WHERE sessions.canonical_session_id = m.old_session_id"
            ).fetchall()
            con.execute(
                f"DELETE FROM sessions WHERE session_id IN (SELECT old_session_id FROM {renames})"  # noqa: S608
            ).fetchall()
            # Every other row naming a paired portal charger names the cloud's charger, as the
            # OCPP loader and the portal reader do on a store that knows the cloud's chargers.
            con.execute(
                f"UPDATE sessions SET charger_id = p.cloud_charger_id FROM {paired} p"  # noqa: S608
                " WHERE sessions.charger_id = p.portal_charger_id"
            ).fetchall()
            counts["sessions"] = con.execute(
                "UPDATE sessions SET installation_id = ? WHERE installation_id = ?",
                [cloud_id, portal_id],
            ).fetchone()[0]
            counts["other_rows"] = 0
            for table, key in charger_tables.items():
                counts["other_rows"] += _repoint_chargers(con, table, key, paired)
            counts["chargers_removed"] = con.execute(
                f"DELETE FROM chargers WHERE charger_id IN (SELECT portal_charger_id FROM {paired})",  # noqa: S608
            ).fetchone()[0]
            counts["chargers_moved"] = con.execute(
                "UPDATE chargers SET installation_id = ? WHERE installation_id = ?",
                [cloud_id, portal_id],
            ).fetchone()[0]
            for table in installation_tables:
                counts["other_rows"] += con.execute(
                    f"UPDATE {table} SET installation_id = ? WHERE installation_id = ?",  # noqa: S608
                    [cloud_id, portal_id],
                ).fetchone()[0]
            if carried:
                assignments = ", ".join(
                    f"{c} = coalesce(installations.{c}, p.{c})" for c in carried
                )
                con.execute(
                    f"UPDATE installations SET {assignments} FROM installations p"  # noqa: S608
                    " WHERE installations.installation_id = ? AND p.installation_id = ?",
                    [cloud_id, portal_id],
                ).fetchall()
            con.execute(
                "DELETE FROM installations WHERE installation_id = ?", [portal_id]
            ).fetchall()
            counts["statements"] = con.execute(
                "SELECT count(*) FROM issued_statements WHERE installation_id = ?", [portal_id]
            ).fetchone()[0]
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(renames)
        con.unregister(paired)
    return PortalFold(
        portal_installation_id=portal_id,
        name=name,
        cloud_installation_id=cloud_id,
        sessions_moved=counts["renamed"] + counts["sessions"],
        sessions_renamed=counts["renamed"],
        chargers_removed=counts["chargers_removed"],
        chargers_moved=counts["chargers_moved"],
        other_rows_moved=counts["other_rows"],
        statements_kept=counts["statements"],
    )


def _repoint_chargers(
    con: duckdb.DuckDBPyConnection, table: str, key: list[str], paired: str
) -> int:
    """Rows of ``table`` naming a paired portal charger now name the cloud's; the count."""
    if "charger_id" not in key:
        return con.execute(
            f"UPDATE {table} SET charger_id = p.cloud_charger_id FROM {paired} p"  # noqa: S608
            f" WHERE {table}.charger_id = p.portal_charger_id"
        ).fetchone()[0]
    # The charger is part of the key: a row the cloud's charger already has under the same
    # key (the same reading stored twice) is kept once, the cloud's.
    others = " AND ".join(f"k.{c} IS NOT DISTINCT FROM t.{c}" for c in key if c != "charger_id")
    moved = con.execute(
        f"""INSERT INTO {table}
        SELECT t.* REPLACE (p.cloud_charger_id AS charger_id)
        FROM {table} t JOIN {paired} p ON t.charger_id = p.portal_charger_id
        WHERE NOT EXISTS (SELECT 1 FROM {table} k
                          WHERE k.charger_id = p.cloud_charger_id AND {others or "TRUE"})"""  # noqa: S608
    ).fetchone()[0]
    con.execute(
        f"DELETE FROM {table} WHERE charger_id IN (SELECT portal_charger_id FROM {paired})"  # noqa: S608
    ).fetchall()
    return moved
