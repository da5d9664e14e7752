"""One session per charging: which copy of a charging is canonical, and why.

A charging can reach the store up to three times: from the Zaptec cloud (its charge-history
``Id``), from the charger's own OCPP transaction (``ocpp:<charge point>:<id>``) and from a
portal export. Every copy stays in ``sessions``; :func:`link_session_copies` (a pure kernel)
decides which one stands for the charging and :func:`resolve_session_copies` (the store step)
writes that decision to ``sessions.canonical_session_id`` and ``sessions.duplicate_reason``.
The ``canonical_sessions`` view (migration 0011) then holds one row per charging.

The matching rule. Two sessions are copies of one charging when

* they come from different systems (cloud, OCPP, portal): one system never lists the same
  charging twice under two ids, so two rows of one system are two chargings;
* they are on the same charger, by charger id or by serial number (an OCPP charge point id
  is the serial; a portal export may name only the serial);
* neither is void (a void cloud session has been replaced by another one, which the copies
  match instead); and
* their starts are at most :data:`START_TOLERANCE` apart, or both have an end and they
  overlap by at least :data:`MIN_OVERLAP_FRACTION` of the shorter one. A charger has one
  connector, so two different chargings on it never overlap by that much.

Precedence among the copies of one charging: a cloud session with a signed meter record,
then any cloud session, then OCPP, then the portal (:data:`PRECEDENCE`); ties go to the
smaller session id, so the choice never depends on the order of ingestion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import duckdb
import polars as pl

#: Starts closer than this are one charging (clock skew between cloud and charger, the
#: portal's whole-minute times).
START_TOLERANCE = dt.timedelta(minutes=2)
#: Or: the overlap covers at least this share of the shorter session.
MIN_OVERLAP_FRACTION = 0.5
#: How many later sessions on the same charger are compared with each session. Copies sort
#: next to each other; more than this many chargings starting inside one charging on one
#: connector do not happen.
NEIGHBOURS = 6
#: Rank of each kind of copy: the lowest rank is canonical.
PRECEDENCE = {"cloud signed": 0, "cloud": 1, "ocpp": 2, "portal": 3, "other": 4}

_LINK_SCHEMA = {
    "session_id": pl.String,
    "canonical_session_id": pl.String,
    "duplicate_reason": pl.String,
}


def source_system(source: pl.Expr) -> pl.Expr:
    """The system a ``sessions.source`` value belongs to: ``cloud``, ``ocpp``, ``portal``, ``other``."""
    return (
        pl.when(source.str.starts_with("zaptec"))
        .then(pl.lit("cloud"))
        .when(source == "ocpp")
        .then(pl.lit("ocpp"))
        .when(source.str.starts_with("portal"))
        .then(pl.lit("portal"))
        .otherwise(pl.lit("other"))
    )


def _prepared(sessions: pl.DataFrame, chargers: pl.DataFrame | None) -> pl.DataFrame:
    signed = (
        pl.col("signed_session").is_not_null() & (pl.col("signed_session").str.len_chars() > 0)
        if "signed_session" in sessions.columns
        else pl.lit(False)
    )
    frame = sessions.select(
        pl.col("session_id").cast(pl.String),
        pl.col("charger_id").cast(pl.String),
        pl.col("start_utc"),
        pl.col("end_utc"),
        source_system(pl.col("source").cast(pl.String)).alias("system"),
        signed.alias("signed"),
        (pl.col("is_void").fill_null(False) if "is_void" in sessions.columns else pl.lit(False)).alias(
            "is_void"
        ),
    )
    if chargers is not None and chargers.height:
        serials = chargers.select(
            pl.col("charger_id").cast(pl.String), pl.col("device_id").cast(pl.String)
        ).unique("charger_id")
        frame = frame.join(serials, on="charger_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("device_id"))
    kind = (
        pl.when((pl.col("system") == "cloud") & pl.col("signed"))
        .then(pl.lit("cloud signed"))
        .otherwise(pl.col("system"))
    )
    return frame.with_columns(
        pl.coalesce("device_id", "charger_id").alias("charger_key"),
        kind.alias("kind"),
        kind.replace_strict(PRECEDENCE, default=PRECEDENCE["other"]).alias("rank"),
    )


def _candidate_pairs(frame: pl.DataFrame, start_tolerance: dt.timedelta, min_overlap: float) -> pl.DataFrame:
    """Pairs of sessions that match by the rule, with the start gap [s] and overlap share."""
    ordered = frame.filter(~pl.col("is_void") & pl.col("charger_key").is_not_null()).sort(
        "charger_key", "start_utc", "session_id"
    )
    columns = ["session_id", "charger_key", "start_utc", "end_utc", "system"]
    parts = []
    for step in range(1, NEIGHBOURS + 1):
        later = ordered.select(pl.col(c).shift(-step).alias(f"{c}_b") for c in columns)
        parts.append(pl.concat([ordered.select(columns), later], how="horizontal"))
    pairs = pl.concat(parts).filter(
        (pl.col("charger_key") == pl.col("charger_key_b")) & (pl.col("system") != pl.col("system_b"))
    )
    gap_s = (pl.col("start_utc_b") - pl.col("start_utc")).dt.total_microseconds().abs() / 1e6
    overlap = pl.min_horizontal("end_utc", "end_utc_b") - pl.max_horizontal("start_utc", "start_utc_b")
    shorter = pl.min_horizontal(
        pl.col("end_utc") - pl.col("start_utc"), pl.col("end_utc_b") - pl.col("start_utc_b")
    )
    share = (
        pl.when(shorter.dt.total_microseconds() > 0)
        .then(overlap.dt.total_microseconds() / shorter.dt.total_microseconds())
        .otherwise(None)
    )
    return (
        pairs.with_columns(gap_s.alias("start_gap_s"), share.clip(lower_bound=0.0).alias("overlap_share"))
        .filter(
            (pl.col("start_gap_s") <= start_tolerance.total_seconds())
            | (pl.col("overlap_share") >= min_overlap)
        )
        .sort("start_gap_s", "session_id", "session_id_b")
    )


def link_session_copies(
    sessions: pl.DataFrame,
    chargers: pl.DataFrame | None = None,
    *,
    start_tolerance: dt.timedelta = START_TOLERANCE,
    min_overlap: float = MIN_OVERLAP_FRACTION,
) -> pl.DataFrame:
    """Decide the canonical session of every charging (pure).

    Parameters
    ----------
    sessions : polars.DataFrame
        Rows of ``sessions``: ``session_id, charger_id, source, start_utc, end_utc`` and
        optionally ``is_void`` and ``signed_session``.
    chargers : polars.DataFrame, optional
        ``charger_id, device_id`` of ``chargers``, so that copies filed under a charger UUID
        and under its serial still meet.
    start_tolerance : datetime.timedelta
        Starts closer than this belong to one charging.
    min_overlap : float
        Or: the share of the shorter session the two overlap by [0–1].

    Returns
    -------
    polars.DataFrame
        One row per session: ``session_id``, ``canonical_session_id`` (itself when canonical)
        and ``duplicate_reason`` (why it is a copy; null when canonical).
    """
    if sessions.height == 0:
        return pl.DataFrame(schema=_LINK_SCHEMA)
    frame = _prepared(sessions, chargers)
    pairs = _candidate_pairs(frame, start_tolerance, min_overlap)
    alone = frame.select(
        "session_id",
        pl.col("session_id").alias("canonical_session_id"),
        pl.lit(None, pl.String).alias("duplicate_reason"),
    )
    if pairs.is_empty():
        return alone.sort("session_id")
    # Only sessions in a candidate pair need the grouping below; the rest stand alone.
    involved = set(pairs["session_id"].to_list()) | set(pairs["session_id_b"].to_list())
    info = {
        row["session_id"]: row
        for row in frame.filter(pl.col("session_id").is_in(list(involved))).iter_rows(named=True)
    }
    parent = {sid: sid for sid in info}
    systems = {sid: {info[sid]["system"]} for sid in info}
    evidence: dict[str, tuple[str, float, float | None]] = {}

    def root(sid: str) -> str:
        while parent[sid] != sid:
            parent[sid] = parent[parent[sid]]
            sid = parent[sid]
        return sid

    # Closest starts first; a group never takes two sessions of one system.
    for a, b, gap_s, share in pairs.select(
        "session_id", "session_id_b", "start_gap_s", "overlap_share"
    ).iter_rows():
        ra, rb = root(a), root(b)
        if ra == rb or systems[ra] & systems[rb]:
            continue
        parent[rb] = ra
        systems[ra] |= systems.pop(rb)
        evidence.setdefault(a, (b, gap_s, share))
        evidence.setdefault(b, (a, gap_s, share))

    groups: dict[str, list[str]] = {}
    for sid in info:
        groups.setdefault(root(sid), []).append(sid)
    rows = []
    for members in groups.values():
        canonical = min(members, key=lambda sid: (info[sid]["rank"], sid))
        for sid in members:
            reason = None
            if sid != canonical:
                reason = _reason(info[sid], info[canonical], evidence.get(sid))
            rows.append((sid, canonical, reason))
    linked = pl.DataFrame(rows, schema=_LINK_SCHEMA, orient="row")
    return (
        pl.concat([alone.filter(~pl.col("session_id").is_in(list(involved))), linked])
        .sort("session_id")
    )


def _reason(copy: dict, canonical: dict, evidence: tuple[str, float, float | None] | None) -> str:
    order = " > ".join(k for k in PRECEDENCE if k != "other")
    matched = ""
    if evidence is not None:
        other, gap_s, share = evidence
        overlap = "" if share is None else f", overlapping {share:.0%} of the shorter one"
        matched = f"; matched {other}: starts {gap_s:.0f} s apart{overlap}"
    return (
        f"{copy['kind']} copy of the {canonical['kind']} session {canonical['session_id']}: "
        f"same charger {canonical['charger_key']}{matched} (rule: same charger, starts within "
        f"{START_TOLERANCE.total_seconds():.0f} s or overlap >= {MIN_OVERLAP_FRACTION:.0%}; "
        f"precedence {order})"
    )


# -- the store step ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CopyResolution:
    """What :func:`resolve_session_copies` found and changed."""

    sessions: int
    copies: int
    changed: int

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def resolve_session_copies(
    con: duckdb.DuckDBPyConnection, *, since: dt.datetime | None = None
) -> CopyResolution:
    """Link every copy in ``sessions`` to its canonical session (idempotent).

    Reads the sessions and chargers, runs :func:`link_session_copies`, and updates only the
    rows whose decision changed, in one transaction: running it again changes nothing.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store.
    since : datetime, optional
        When a run began: only the chargers (known by serial, so a cloud charger and its
        OCPP charge point are one) whose sessions or charger rows were written since then
        are looked at. Copies are always of one charger, so no other link can change.
        None looks at every session.
    """
    columns = (
        "session_id, charger_id, source, start_utc, end_utc, is_void, signed_session,"
        " canonical_session_id, duplicate_reason"
    )
    if since is None:
        sessions = con.sql(f"SELECT {columns} FROM sessions").pl()  # noqa: S608
    else:
        # A session's charger is known by its serial where the store has one (an OCPP charge
        # point id is the serial, a cloud charger id is not): keys the run wrote to.
        sessions = con.sql(
            f"""WITH keyed AS (
              SELECT s.*, coalesce(c.device_id, s.charger_id) AS charger_key
              FROM sessions s LEFT JOIN chargers c USING (charger_id)),
            touched AS (
              SELECT charger_key FROM keyed WHERE ingested_at >= $since
              UNION SELECT coalesce(device_id, charger_id) FROM chargers WHERE ingested_at >= $since)
            SELECT {columns} FROM keyed
            WHERE charger_key IN (SELECT charger_key FROM touched)
               OR (charger_id IS NULL AND ingested_at >= $since)""",  # noqa: S608
            params={"since": since},
        ).pl()
    chargers = con.sql("SELECT charger_id, device_id FROM chargers").pl()
    links = link_session_copies(sessions, chargers)
    changed = links.join(
        sessions.select(
            "session_id",
            pl.col("canonical_session_id").alias("stored_canonical"),
            pl.col("duplicate_reason").alias("stored_reason"),
        ),
        on="session_id",
    ).filter(
        pl.col("canonical_session_id").ne_missing(pl.col("stored_canonical"))
        | pl.col("duplicate_reason").ne_missing(pl.col("stored_reason"))
    )
    copies = links.filter(pl.col("canonical_session_id") != pl.col("session_id")).height
    if changed.height:
        view = f"_links_{uuid.uuid4().hex}"
        con.register(view, changed.select(list(_LINK_SCHEMA)).to_arrow())
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    f"UPDATE sessions SET canonical_session_id = l.canonical_session_id,"  # noqa: S608
                    f" duplicate_reason = l.duplicate_reason FROM {view} l"
                    " WHERE sessions.session_id = l.session_id"
                ).fetchall()
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister(view)
    return CopyResolution(sessions=links.height, copies=copies, changed=changed.height)
