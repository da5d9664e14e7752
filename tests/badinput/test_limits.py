"""The limit machinery itself: limits from the environment, bounded lines, CSV, JSON, zips."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from zapanalytics.ingest.limits import (
    ENV_NAMES,
    InputFileError,
    InputLimits,
    LimitExceeded,
    check_file,
    check_zip,
    file_record,
    iter_csv_records,
    iter_lines,
    load_json,
    read_document,
)


def test_every_limit_has_a_default_and_an_environment_variable():
    limits = InputLimits.from_env({})
    assert limits == InputLimits()
    assert set(ENV_NAMES.values()) >= {"ZAPANALYTICS_MAX_FILE_BYTES", "ZAPANALYTICS_MAX_ROWS_PER_SHEET",
                                       "ZAPANALYTICS_MAX_COMPRESSION_RATIO", "ZAPANALYTICS_MAX_FRAME_BYTES",
                                       "ZAPANALYTICS_MAX_FIELD_CHARS", "ZAPANALYTICS_MAX_UNCOMPRESSED_BYTES"}
    raised = InputLimits.from_env({"ZAPANALYTICS_MAX_FIELD_CHARS": "200_000",
                                   "ZAPANALYTICS_MAX_COMPRESSION_RATIO": "250.5"})
    assert raised.max_field_chars == 200_000 and raised.max_compression_ratio == 250.5
    with pytest.raises(ValueError, match="ZAPANALYTICS_MAX_LINE_BYTES='lots' is not a number"):
        InputLimits.from_env({"ZAPANALYTICS_MAX_LINE_BYTES": "lots"})
    with pytest.raises(ValueError, match="max_rows_per_sheet must be positive"):
        InputLimits(max_rows_per_sheet=0)
    assert InputLimits().replace(max_line_bytes=None, max_json_depth=8).max_json_depth == 8


def test_lines_are_split_across_chunks_and_a_long_one_is_described_not_held():
    limits = InputLimits(max_line_bytes=100, raw_prefix_chars=10)
    long_line = b"y" * 5_000_000
    data = b"a,b\r\n" + b"x" * 100 + b"\n" + long_line + b"\nlast"
    lines = list(iter_lines(io.BytesIO(data), "f.csv", limits))
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert lines[0].data == b"a,b" and lines[1].data == b"x" * 100 and lines[3].data == b"last"
    assert lines[2].data is None
    assert lines[2].raw == "y" * 10 and lines[2].raw.size_bytes == len(long_line)
    assert lines[2].raw.sha256 == hashlib.sha256(long_line).hexdigest()
    assert lines[2].raw.truncated and lines[2].raw.source_file == "f.csv"


def test_a_long_last_line_without_a_newline_is_described_too():
    limits = InputLimits(max_line_bytes=10)
    (line,) = iter_lines(io.BytesIO(b"z" * 3_000_000), "f", limits)
    assert line.data is None and line.raw.size_bytes == 3_000_000


def test_csv_records_name_file_line_and_limit():
    limits = InputLimits(max_field_chars=5)
    data = "\ufeffa,b\n1,123456\n\n2,\xff\n".encode("utf-8").replace("\xff".encode(), b"\xff")
    records = list(iter_csv_records(io.BytesIO(data), "/x/m.csv", limits))
    assert records[0].fields == ["a", "b"]
    assert records[1].problem == ("m.csv:2: field 2 has 6 characters, over the limit of 5 characters per field"
                                  " (ZAPANALYTICS_MAX_FIELD_CHARS)")
    assert records[2].problem == "m.csv:4: not UTF-8 text (byte 0xff at column 3)"
    replaced = list(iter_csv_records(io.BytesIO(data), "/x/m.csv", limits, errors="replace"))
    assert replaced[2].fields == ["2", "\ufffd"]


def test_json_documents_are_bounded_in_size_and_depth():
    limits = InputLimits(max_json_depth=3, max_document_bytes=1000)
    assert load_json(b'{"a": [[1]]}', "d.json", limits) == {"a": [[1]]}
    with pytest.raises(LimitExceeded, match=r"^d\.json: JSON nested deeper, over the limit of 3 levels"):
        load_json(b'{"a": [[[1]]]}', "d.json", limits)
    with pytest.raises(LimitExceeded, match="levels of JSON nesting"):
        load_json(b"[" * 100_000, "d.json", InputLimits())
    with pytest.raises(InputFileError, match=r"^d\.json: not JSON: Expecting value \(line 2, column 1\)"):
        load_json(b"\n", "d.json", limits)
    with pytest.raises(InputFileError, match=r"not UTF-8 text \(byte 0xff at offset 1, line 1\)"):
        load_json(b"[\xff]", "d.json", limits)
    with pytest.raises(LimitExceeded, match="1,001 bytes, over the limit of 1,000 bytes per document"):
        load_json(b" " * 1001, "d.json", limits)


def test_files_are_checked_before_they_are_read(tmp_path):
    limits = InputLimits(max_document_bytes=10)
    with pytest.raises(InputFileError, match="is a directory, not a file"):
        check_file(tmp_path, limits, whole=True)
    with pytest.raises(InputFileError, match="no such file"):
        read_document(tmp_path / "gone.json", limits)
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * 11)
    with pytest.raises(LimitExceeded, match=r"big\.json: 11 bytes, over the limit of 10 bytes per document read whole"):
        read_document(big, limits)
    record = file_record(big, limits)
    assert record.size_bytes == 11 and record.sha256 == hashlib.sha256(b"x" * 11).hexdigest()
    assert record.source_file == str(big)


def test_the_zip_directory_is_checked_before_anything_inflates(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (4 * 1024 * 1024))
    with pytest.raises(LimitExceeded, match=r"entry 'xl/worksheets/sheet1\.xml' inflates [\d,]+-fold, over the limit of "
                                            r"100 compression ratio"):
        check_zip(bomb, InputLimits())
    with pytest.raises(LimitExceeded, match="over the limit of 1,000,000 uncompressed bytes per archive"):
        check_zip(bomb, InputLimits(max_uncompressed_bytes=1_000_000, max_compression_ratio=10_000))
    check_zip(bomb, InputLimits(max_compression_ratio=10_000))
    not_zip = tmp_path / "x.xlsx"
    not_zip.write_bytes(b"PK but not really")
    with pytest.raises(InputFileError, match=r"not a readable workbook \(not a zip archive"):
        check_zip(not_zip, InputLimits())


def test_the_door_keeps_a_prefix_the_size_and_the_hash_of_the_whole(tmp_path):
    from zapanalytics.ingest.door import IngestRun, Rejection
    from zapanalytics.ingest.limits import RawPrefix
    from zapanalytics.store import open_store

    con = open_store(tmp_path / "s.duckdb")
    try:
        whole = "q" * 100_000
        streamed = RawPrefix("p" * 10, size_bytes=9_000_000, sha256="ab" * 32, source_file="/in/f.csv",
                             truncated=True)
        with IngestRun(con, "test") as run:
            run.admit([whole, streamed], {}, [Rejection(0, "prices", "bad"), Rejection(1, "prices", "huge")],
                      record_table="prices")
        rows = con.execute("SELECT length(raw), raw_size_bytes, raw_truncated, raw_sha256, source_file"
                           " FROM quarantine ORDER BY reason").fetchall()
    finally:
        con.close()
    assert rows[0] == (65_536, 100_000, True, hashlib.sha256(whole.encode()).hexdigest(), None)
    assert rows[1] == (10, 9_000_000, True, "ab" * 32, "/in/f.csv")
