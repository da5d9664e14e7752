"""The spool: whole lines only, durable before acknowledged, rotated, one writer, crash-tolerant."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

from zapanalytics.ingest.spool import (
    GroupCommitSpool,
    SegmentWriter,
    SpoolError,
    SpoolLockedError,
    encode_record,
    iter_lines,
    list_segments,
    read_lines,
    read_meta,
    segment_name,
    spool_records,
)


def _record(n: int) -> dict:
    return {"ts": "2025-01-01T00:00:00+00:00", "charge_point_id": "CP", "direction": "in", "message": f"m{n}"}


def test_lines_round_trip_and_non_ascii_is_escaped(tmp_path):
    with SegmentWriter(tmp_path / "s") as writer:
        writer.write_batch([encode_record({"message": "blåbær ✓ \udcff"}), encode_record(_record(1))])
    records = list(spool_records(tmp_path / "s"))
    assert records[0]["message"] == "blåbær ✓ \udcff"
    assert records[1]["message"] == "m1"
    raw = next((tmp_path / "s").glob("*.jsonl")).read_bytes()
    assert raw.isascii()


def test_rotation_seals_segments_in_order(tmp_path):
    with SegmentWriter(tmp_path, max_segment_bytes=300) as writer:
        for n in range(20):
            writer.write_batch([encode_record(_record(n))])
        active = writer.active_index
        assert (tmp_path / segment_name(active, sealed=False)).exists()
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    assert all(s.sealed for s in segments)
    assert [s.index for s in segments] == sorted(s.index for s in segments)
    assert [r["message"] for r in spool_records(tmp_path)] == [f"m{n}" for n in range(20)]


def test_second_writer_is_refused(tmp_path):
    with SegmentWriter(tmp_path):
        with pytest.raises(SpoolLockedError, match="one writer"):
            SegmentWriter(tmp_path).open()
    SegmentWriter(tmp_path).open().close()  # released on close


def test_reader_never_returns_a_torn_line_and_recovery_cuts_it(tmp_path):
    writer = SegmentWriter(tmp_path).open()
    writer.write_batch([encode_record(_record(1)), encode_record(_record(2))])
    index = writer.active_index
    # A crash in the middle of a write: half a line at the end of the active segment.
    with open(tmp_path / segment_name(index, sealed=False), "ab") as handle:
        handle.write(b'{"ts": "2025-01-01T00:0')
    chunk = read_lines(tmp_path, index)
    assert [json.loads(line)["message"] for line in chunk.lines] == ["m1", "m2"]
    assert chunk.at_end and chunk.torn_tail_bytes == len(b'{"ts": "2025-01-01T00:0')
    # Simulate the process dying: drop the lock without sealing, then start a new writer.
    os.close(writer._fd)
    writer._fd = None
    writer.close()
    with SegmentWriter(tmp_path) as second:
        assert second.active_index == index + 1
    sealed = tmp_path / segment_name(index, sealed=True)
    assert sealed.read_bytes().endswith(b"\n")
    assert [r["message"] for r in spool_records(tmp_path)] == ["m1", "m2"]


def test_read_lines_continues_from_offset_and_grows_window_for_long_lines(tmp_path):
    long_message = "x" * 5000
    with SegmentWriter(tmp_path) as writer:
        writer.write_batch([encode_record(_record(1)), encode_record({"message": long_message})])
        index = writer.active_index
    first = read_lines(tmp_path, index, 0, max_bytes=100)
    assert len(first.lines) == 1 and not first.at_end
    second = read_lines(tmp_path, index, first.end_offset, max_bytes=100)
    assert json.loads(second.lines[0])["message"] == long_message
    assert second.at_end and second.sealed
    assert [offset for offset, _ in iter_lines(tmp_path, index)][-1] == second.end_offset


def test_meta_identifies_the_spool(tmp_path):
    with pytest.raises(SpoolError, match="not an OCPP spool"):
        read_meta(tmp_path)
    with SegmentWriter(tmp_path) as writer:
        spool_id = writer.spool_id
    assert read_meta(tmp_path)["spool_id"] == spool_id
    (tmp_path / "spool.json").write_text('{"format": "something else"}')
    with pytest.raises(SpoolError):
        read_meta(tmp_path)


def test_group_commit_batches_concurrent_appends_and_resolves_after_write(tmp_path):
    async def scenario():
        async with GroupCommitSpool(tmp_path) as spool:
            futures = [spool.append(_record(n)) for n in range(500)]
            # Nothing is acknowledged before it is on disk.
            await asyncio.gather(*futures)
            on_disk = list(spool_records(tmp_path))
            return spool.writer.batches_written, on_disk

    batches, on_disk = asyncio.run(scenario())
    assert [r["message"] for r in on_disk] == [f"m{n}" for n in range(500)]
    assert batches < 500  # group commit: many appends per fsync


def test_group_commit_refuses_appends_after_a_write_failure(tmp_path):
    async def scenario():
        spool = await GroupCommitSpool(tmp_path).open()

        def failing(lines):
            raise OSError(28, "No space left on device")

        spool.writer.write_batch = failing
        with pytest.raises(SpoolError, match="No space left"):
            await spool.append(_record(1))
        with pytest.raises(SpoolError, match="stopped after a write error"):
            spool.append(_record(2))
        await spool.close()

    asyncio.run(scenario())


def test_reader_sees_only_complete_lines_while_a_writer_appends(tmp_path):
    writer = SegmentWriter(tmp_path, fsync=False).open()
    index = writer.active_index
    stop = threading.Event()

    def append_forever():
        n = 0
        while not stop.is_set() and n < 3000:
            writer.write_batch([encode_record(_record(n))])
            n += 1

    thread = threading.Thread(target=append_forever)
    thread.start()
    seen, offset = [], 0

    def drain() -> bool:
        nonlocal offset
        chunk = read_lines(tmp_path, index, offset, max_bytes=4096)
        seen.extend(json.loads(line)["message"] for line in chunk.lines)
        offset = chunk.end_offset
        return chunk.at_end

    try:
        while thread.is_alive():
            drain()
    finally:
        stop.set()
        thread.join()
    while not drain():
        pass
    writer.close()
    assert seen == [f"m{n}" for n in range(len(seen))]
    assert len(seen) == 3000


def test_a_line_longer_than_any_frame_is_refused_naming_the_segment(tmp_path, monkeypatch):
    from zapanalytics.ingest import spool as spool_module

    monkeypatch.setattr(spool_module, "MAX_LINE_BYTES", 4096)
    directory = tmp_path / "spool"
    directory.mkdir()
    segment = directory / spool_module.segment_name(1, sealed=True)
    segment.write_bytes(b'{"ok": 1}\n' + b"x" * 10_000 + b"\n")
    first = spool_module.read_lines(directory, 1, 0, max_bytes=16)
    assert first.lines == [b'{"ok": 1}']
    with pytest.raises(spool_module.SpoolError, match=r"0000000001\.jsonl: the line at byte 10 is longer than 4,096 bytes"):
        spool_module.read_lines(directory, 1, first.end_offset, max_bytes=16)
