"""The DuckDB bulk path stores exactly what the per-record path stores, and quarantines the same.

Each case loads the same charge-history page texts twice into fresh stores: once through the
per-record path (:func:`zapanalytics.ingest.zaptec.files.admit_chargehistory_pages`, the loader
before the bulk path) and once through :func:`zapanalytics.ingest.zaptec.bulk.admit_history_texts`.
Counts, ``sessions`` (but ``ingested_at``), ``energy_details`` and the quarantine (reason, raw
payload and its digest) must be identical.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zapanalytics.ingest.door import IngestRun
from zapanalytics.ingest.zaptec.bulk import admit_history_texts, batches_by_size
from zapanalytics.ingest.zaptec.files import admit_chargehistory_pages
from zapanalytics.store import open_store

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "badinput" / "corpus" / "zaptec"
SAMPLE_PAGES = sorted((REPO / "data" / "sample" / "zaptec" / "chargehistory").glob("page_*.json"))
INSTALLATION = "4a1b2c3d-0000-4000-8000-000000000001"
_COMPARED = {
    "sessions": "* EXCLUDE (ingested_at)",
    "energy_details": "*",
    "quarantine": "table_name, reason, raw, raw_sha256, raw_size_bytes, raw_truncated, source_file",
}


def _load(path: Path, batches: list[list[str | bytes]], *, bulk: bool):
    con = open_store(path)
    with IngestRun(con, "zaptec_files") as run:
        for texts in batches:
            if bulk:
                admit_history_texts(run, texts, installation_id=INSTALLATION)
            else:
                admit_chargehistory_pages(run, texts, installation_id=INSTALLATION)
    counts = run.counts.as_dict()
    con.close()
    return counts


def assert_same_store(tmp_path: Path, batches: list[list[str | bytes]]) -> dict[str, int]:
    """Load ``batches`` both ways and compare; return the per-record path's counts."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    reference = _load(tmp_path / "by_record.duckdb", batches, bulk=False)
    ours = _load(tmp_path / "bulk.duckdb", batches, bulk=True)
    assert ours == reference
    assert ours["rows_in"] == ours["rows_stored"] + ours["rows_quarantined"]
    con = duckdb.connect(str(tmp_path / "bulk.duckdb"), read_only=True)
    con.execute(f"ATTACH '{tmp_path / 'by_record.duckdb'}' AS ref (READ_ONLY)")
    try:
        for table, columns in _COMPARED.items():
            for left, right in (("main", "ref"), ("ref", "main")):
                extra = con.execute(
                    f"SELECT {columns} FROM {left}.{table} EXCEPT ALL SELECT {columns} FROM {right}.{table}"  # noqa: S608
                ).fetchall()
                assert not extra, f"{table}: rows only in {left}: {extra[:3]}"
    finally:
        con.close()
    return reference


def _page(*items, **envelope) -> str:
    return json.dumps({"Pages": 1, "Data": list(items), **envelope}, ensure_ascii=False)


def _good_items() -> list[dict]:
    """Items of the bundled sample (signed sessions with OCMF records among them)."""
    return json.loads(SAMPLE_PAGES[0].read_text())["Data"][:6]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("page_*.json")), ids=lambda p: p.stem)
def test_every_bad_page_of_the_corpus_alone(tmp_path, path):
    assert_same_store(tmp_path, [[path.read_bytes()]])


def test_the_corpus_pages_in_one_batch_with_good_pages(tmp_path):
    texts = [p.read_bytes() for p in sorted(CORPUS.glob("page_*.json"))]
    good = SAMPLE_PAGES[0].read_bytes()
    counts = assert_same_store(tmp_path, [[good, *texts, good]])
    assert counts["rows_quarantined"] >= 25 and counts["rows_stored"] >= 100


def test_the_sample_in_large_and_single_page_batches(tmp_path):
    texts = [p.read_bytes() for p in SAMPLE_PAGES]
    counts = assert_same_store(tmp_path / "one", [texts])
    assert counts["rows_quarantined"] == 0 and counts["rows_stored"] > 100
    assert_same_store(tmp_path / "each", [[t] for t in texts])


def test_a_session_repeated_across_pages_and_batches(tmp_path):
    first, second, *_ = _good_items()
    changed = copy.deepcopy(first)
    changed["Energy"] = first["Energy"] + 1.0
    broken = copy.deepcopy(second)
    broken["Energy"] = "12,5"
    batches = [
        [_page(first, second), _page(changed), _page(copy.deepcopy(second))],
        [_page(broken, first)],
        [_page(second), "<html>503</html>", _page(changed)],
    ]
    assert_same_store(tmp_path, batches)


def test_text_the_json_readers_could_read_differently(tmp_path):
    good = _good_items()[0]
    text = _page(good)
    variants = [
        text.replace('"Energy": ', '"Energy": nan, "X": ', 1),  # lowercase nan: Python refuses
        text.replace('"Energy": ', '"X": NaN, "Energy": ', 1),  # NaN in an unread field
        text[:-2] + ",]}",  # trailing comma
        text.replace('"Id": ', '"Id": "dup", "Id": ', 1),  # a repeated key: Python keeps the last
        text.replace('"Timestamp": ', '"Timestamp": "x", "Timestamp": ', 1),
        text.replace('"Energy": 0.0}', '"Energy": 0.0, "Energy": 1.0}', 1),  # in a detail
        text.replace('"Energy": 0.0}', '"Energy": null}', 1),
        text.replace('"Energy": 0.0}', '"Energy": "0.0"}', 1),
        text.replace('"Energy": 0.0}', '"Energy": false}', 1),
        text.replace('"Energy": 0.0}', '"Energy": 0.0, "Extra": [1]}', 1),
        text.replace('"Timestamp": "', '"Timestamp": 20250310, "T": "', 1),
        text.replace('"UserFullName": "', '"UserFullName": "\\udc80', 1),  # unpaired surrogate
        text.replace('"UserFullName": "', '"UserFullName": "\\ud83d\\ude00', 1),  # a paired one
        "\ufeff" + text,  # a BOM in decoded text
        json.dumps([good]),  # a bare list
        json.dumps({"Data": [good], "Data2": 1, "Pages": 1}),
        '{"Pages": 1, "Data": [' + json.dumps(good) + '], "Pages": 2}',
        '{"Pages": 1, "Data": ' + "[" * 70 + "]" * 70 + "}",
        text.encode("utf-8") + b"\xff",
    ]
    assert_same_store(tmp_path, [[v] for v in variants])
    assert_same_store(tmp_path / "together", [variants])


_ODD_VALUES = [
    None, "", " ", "x", 0, -1, 1, 2**31, 2**63, 2**64 + 1, 1.5, -0.0, 1e308, float("nan"),
    float("inf"), True, False, [], {}, [1], {"a": 1}, "2025-03-10T16:00:00", "2025-03-10T16:00:00Z",
    "2025-03-10T16:00:00+00:00", "2025-03-10T16:00:00.1234567", "2025-03-10 16:00:00",
    "2025-03-10T16:00", "2025-02-30T10:00:00", "2025-03-10T24:00:00", "2025-03-10T16:00:00+01:00",
    "2099-01-01T00:00:00", "2014-12-31T23:59:59", "٢٠٢٥-03-10T16:00:00", "5.0.2.1", " 5.0.2.1",
    "OCMF|{}|{}", {"Major": 5, "Minor": 0, "Build": 2, "Revision": 1},
    {"Major": 5.0, "Minor": 0, "Build": 2, "Revision": 1}, {"Major": -5, "Minor": 0, "Build": 2, "Revision": 1},
]  # fmt: skip
_FIELDS = [
    "Id", "ChargerId", "InstallationId", "UserId", "UserFullName", "TokenName", "ExternalId",
    "ReplacedBySessionId", "StartDateTime", "EndDateTime", "CommitEndDateTime", "Energy",
    "CommitMetadata", "SignedSession", "ChargerFirmwareVersion", "EnergyDetails",
]  # fmt: skip
_POINT_VALUES = [
    None, "2025-03-10T17:00:00+00:00", "2025-03-10T17:00:00Z", "2025-03-10T17:00:00",
    "2025-03-10T17:00:00.123456+00:00", 0.5, -0.5, 0, 3000, "0.5", True, float("nan"),
]  # fmt: skip


@st.composite
def _mutated_items(draw):
    items = [copy.deepcopy(i) for i in _good_items()]
    for _ in range(draw(st.integers(0, 6))):
        item = items[draw(st.integers(0, len(items) - 1))]
        action = draw(st.sampled_from(["set", "delete", "point", "copy"]))
        if action == "set":
            item[draw(st.sampled_from(_FIELDS))] = draw(st.sampled_from(_ODD_VALUES))
        elif action == "delete":
            item.pop(draw(st.sampled_from(_FIELDS)), None)
        elif action == "point" and isinstance(item.get("EnergyDetails"), list) and item["EnergyDetails"]:
            points = item["EnergyDetails"]
            point = points[draw(st.integers(0, len(points) - 1))]
            if isinstance(point, dict):
                point[draw(st.sampled_from(["Timestamp", "Energy"]))] = draw(st.sampled_from(_POINT_VALUES))
        elif action == "copy":
            items.append(copy.deepcopy(item))
    return items


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=_mutated_items(), split=st.integers(1, 4))
def test_mutated_items_are_judged_alike(tmp_path_factory, items, split):
    pages = [_page(*items[i : i + split]) for i in range(0, len(items), split)]
    assert_same_store(tmp_path_factory.mktemp("mutated"), [pages])


def test_batches_by_size_bounds_each_batch():
    assert batches_by_size([5, 5, 5, 20, 1], 10) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert batches_by_size([], 10) == []
    assert [len(r) for r in batches_by_size([1] * 7, 3)] == [3, 3, 1]


def test_clean_pages_never_reach_the_per_record_path(tmp_path, monkeypatch):
    from zapanalytics.ingest.zaptec import bulk

    seen = []
    original = bulk.admit_by_record

    def counting(run, texts, whole_pages, items_by_page, installation_id):
        seen.append((list(whole_pages), {p: len(i) for p, i in items_by_page.items()}))
        return original(run, texts, whole_pages, items_by_page, installation_id)

    monkeypatch.setattr(bulk, "admit_by_record", counting)
    texts = [p.read_bytes() for p in SAMPLE_PAGES]
    con = open_store(tmp_path / "s.duckdb")
    with IngestRun(con, "zaptec_files") as run:
        counts, bad_pages, _ = admit_history_texts(run, texts, installation_id=INSTALLATION)
    assert counts.rows_stored == counts.rows_in > 100 and bad_pages == 0
    assert seen == [([], {})]
    broken = _good_items()[1]
    broken["Energy"] = -1.0
    with IngestRun(con, "zaptec_files") as run:
        counts, _, _ = admit_history_texts(run, [_page(*_good_items()[2:], broken)], installation_id=INSTALLATION)
    assert counts.rows_quarantined == 1
    assert seen[-1] == ([], {0: 1}), "only the broken item goes to the per-record path"
