"""The central system: answers and CALLERRORs, spool-before-answer, auth, limits, admin calls."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from ocpp_helpers import PASSWORDS, auth_header, exchange, raw_client, running
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from zapanalytics.ingest.ocpp.server import LoginThrottle, send_admin_command
from zapanalytics.ingest.ocpp.sim import SimulatedChargePoint, SimulationResult
from zapanalytics.ingest.spool import spool_records

START = {"connectorId": 1, "idTag": "TAG-A", "meterStart": 1000, "timestamp": "2025-01-01T10:00:00Z"}

BAD_FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('[2, "abc", "Heartbeat", {', "abc", "FormationViolation"),
    ('{"not": "an array"}', "-1", "FormationViolation"),
    ('[7, "u7", "Heartbeat", {}]', "u7", "FormationViolation"),
    ('[2, "u8", "Heartbeat"]', "u8", "FormationViolation"),
    ('[2, "u9", "Heartbeat", []]', "u9", "FormationViolation"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "x" * 37, "FormationViolation"),
    ('[2, "u1", "FlyToTheMoon", {}]', "u1", "NotImplemented"),
    ('[2, "u2", "RemoteStartTransaction", {"idTag": "A"}]', "u2", "NotSupported"),
    ('[2, "u3", "MeterValues", {"connectorId": "one", "meterValue": []}]', "u3", "TypeConstraintViolation"),
    ('[2, "u4", "StartTransaction", {"connectorId": 1, "idTag": "A"}]', "u4", "ProtocolError"),
    ('[2, "u5", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]',
     "u5", "PropertyConstraintViolation"),
    ('[2, "u6", "Heartbeat", {"surprise": true}]', "u6", "FormationViolation"),
    ('[2, "u10", "Authorize", {"idTag": "' + "T" * 21 + '"}]', "u10", "TypeConstraintViolation"),
    ('[2,"deep","DataTransfer",{"vendorId":"x","data":' + "[" * 20_000 + "]" * 20_000 + "}]",
     "deep", "FormationViolation"),
]


def test_bad_frames_get_the_right_callerror_and_the_connection_stays_up(tmp_path):
    async def scenario():
        answers = []
        async with running(tmp_path / "spool") as central, raw_client(central) as ws:
            for frame, _, _ in BAD_FRAMES:
                answers.append(await exchange(ws, frame))
                heartbeat = await exchange(ws, [2, "hb", "Heartbeat", {}])
                assert heartbeat[0] == 3 and "currentTime" in heartbeat[2]
            await ws.send(b"\xff\xfe binary junk")
            answers.append(json.loads(await ws.recv()))
        return answers

    answers = asyncio.run(scenario())
    for (frame, unique_id, code), answer in zip(BAD_FRAMES, answers, strict=False):
        assert answer[0] == 4, frame
        assert (answer[1], answer[2]) == (unique_id, code), frame
    assert answers[-1][2] == "FormationViolation"
    # Every frame, good or bad, is in the spool with the answer it got.
    records = list(spool_records(tmp_path / "spool"))
    assert len(records) == 2 * len(BAD_FRAMES) + 1
    assert all(json.loads(r["reply"])[0] in (3, 4) for r in records)


def test_every_answer_is_on_disk_before_it_arrives(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool") as central, raw_client(central) as ws:
            for n in range(30):
                frame = [2, f"m{n}", "MeterValues", {"connectorId": 1, "meterValue": [
                    {"timestamp": "2025-01-01T10:00:00Z", "sampledValue": [{"value": str(n)}]}]}]
                answer = await exchange(ws, frame)
                assert answer == [3, f"m{n}", {}]
                spooled = [json.loads(r["message"])[1] for r in spool_records(tmp_path / "spool")]
                assert spooled[-1] == f"m{n}"

    asyncio.run(scenario())


def test_start_transaction_ids_are_stable_for_retries_and_never_reused_after_restart(tmp_path):
    async def session():
        async with running(tmp_path / "spool") as central, raw_client(central) as ws:
            first = await exchange(ws, [2, "a", "StartTransaction", START])
            retry = await exchange(ws, [2, "b", "StartTransaction", START])
            other = await exchange(ws, [2, "c", "StartTransaction", {**START, "meterStart": 2000}])
            return first[2]["transactionId"], retry[2]["transactionId"], other[2]["transactionId"]

    first, retry, other = asyncio.run(session())
    assert first == retry and other > first

    async def after_restart():
        async with running(tmp_path / "spool") as central, raw_client(central) as ws:
            again = await exchange(ws, [2, "d", "StartTransaction", START])
            fresh = await exchange(ws, [2, "e", "StartTransaction", {**START, "meterStart": 3000}])
            return again[2]["transactionId"], fresh[2]["transactionId"]

    again, fresh = asyncio.run(after_restart())
    assert again == first  # the retry of a start answered before the restart keeps its id
    assert fresh > other


def test_id_tag_allow_list(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool", id_tags=frozenset({"TAG-A"})) as central, raw_client(central) as ws:
            known = await exchange(ws, [2, "1", "Authorize", {"idTag": "TAG-A"}])
            unknown = await exchange(ws, [2, "2", "Authorize", {"idTag": "TAG-Z"}])
            start = await exchange(ws, [2, "3", "StartTransaction", {**START, "idTag": "TAG-Z"}])
            return known, unknown, start

    known, unknown, start = asyncio.run(scenario())
    assert known[2]["idTagInfo"]["status"] == "Accepted"
    assert unknown[2]["idTagInfo"]["status"] == "Invalid"
    assert start[2]["idTagInfo"]["status"] == "Invalid" and isinstance(start[2]["transactionId"], int)


@pytest.mark.parametrize(
    ("charge_point_id", "headers"),
    [
        ("ZPR100001", {}),
        ("ZPR100001", auth_header("ZPR100001", "wrong-password")),
        ("ZPR100001", auth_header("ZPR100002", PASSWORDS["ZPR100002"])),  # someone else's login
        ("ZPR999999", auth_header("ZPR999999", "anything")),
        ("ZPR100001", {"Authorization": "Bearer abc"}),
        ("ZPR100001", {"Authorization": "Basic !!!notbase64"}),
    ],
)
def test_logins_are_refused_without_the_right_password(tmp_path, charge_point_id, headers):
    async def scenario():
        async with running(tmp_path / "spool") as central:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    f"ws://127.0.0.1:{central.port}/ocpp/{charge_point_id}",
                    subprotocols=["ocpp1.6"], additional_headers=headers,
                ):
                    pass
            return refused.value.response

    response = asyncio.run(scenario())
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]


def test_handshake_rules_path_and_subprotocol(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool") as central:
            statuses = []
            for path, protocols in (("/elsewhere/ZPR100001", ["ocpp1.6"]),
                                    ("/ocpp/bad%20id", ["ocpp1.6"]),
                                    ("/ocpp/ZPR100001", ["ocpp2.0.1"]),
                                    ("/ocpp/ZPR100001", None)):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{central.port}{path}", subprotocols=protocols,
                                       additional_headers=auth_header("ZPR100001", PASSWORDS["ZPR100001"])):
                        pass
                statuses.append(refused.value.response.status_code)
            return statuses

    assert asyncio.run(scenario()) == [404, 404, 400, 400]


def test_login_throttle_doubles_after_free_failures():
    now = [0.0]
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, max_delay_s=5.0, window_s=60.0, clock=lambda: now[0])
    delays = [throttle.failed("peer:1.2.3.4", "id:X") for _ in range(6)]
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 5.0]
    assert throttle.delay_s("id:X") == 5.0
    throttle.succeeded("id:X")
    assert throttle.delay_s("id:X") == 0.0
    assert throttle.delay_s("peer:1.2.3.4") == 5.0  # the address still carries its failures
    now[0] = 61.0
    assert throttle.delay_s("peer:1.2.3.4") == 0.0  # failures expire after the window


def test_repeated_failed_logins_are_slowed_down(tmp_path):
    async def attempt(port: int) -> float:
        started = time.perf_counter()
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{port}/ocpp/ZPR100001", subprotocols=["ocpp1.6"],
                               additional_headers=auth_header("ZPR100001", "guess")):
                pass
        return time.perf_counter() - started

    async def scenario():
        async with running(tmp_path / "spool", auth_free_failures=1, auth_base_delay_s=0.4) as central:
            return [await attempt(central.port) for _ in range(3)]

    first, second, third = asyncio.run(scenario())
    assert first < 0.3
    assert second >= 0.4
    assert third >= 0.8


def test_oversized_frames_close_the_connection_but_not_the_server(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool", max_frame_bytes=2048) as central:
            async with raw_client(central) as ws:
                await ws.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 4096}]))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                code = closed.value.rcvd.code if closed.value.rcvd else None
            async with raw_client(central) as ws:
                answer = await exchange(ws, [2, "ok", "Heartbeat", {}])
            return code, answer

    code, answer = asyncio.run(scenario())
    assert code == 1009
    assert answer[0] == 3


def test_idle_connections_are_closed(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool", idle_timeout_s=0.3) as central, raw_client(central) as ws:
            await exchange(ws, [2, "1", "Heartbeat", {}])
            started = time.perf_counter()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return time.perf_counter() - started, closed.value.rcvd.reason

    waited, reason = asyncio.run(scenario())
    assert 0.2 < waited < 3
    assert reason == "idle timeout"


def test_a_reconnecting_charge_point_replaces_its_old_connection(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool") as central:
            async with raw_client(central) as old:
                await exchange(old, [2, "1", "Heartbeat", {}])
                async with raw_client(central) as new:
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(old.recv(), 5)
                    answer = await exchange(new, [2, "2", "Heartbeat", {}])
                    return answer, list(central.connections)

    answer, connected = asyncio.run(scenario())
    assert answer[0] == 3 and connected == ["ZPR100001"]


def test_change_configuration_and_charging_profile_reach_the_charge_point(tmp_path):
    profile = {
        "chargingProfileId": 7, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]},
    }

    async def scenario():
        result = SimulationResult("ZPR100001")
        async with running(tmp_path / "spool", admin_token="admin-token-123") as central:
            async with connect(f"ws://127.0.0.1:{central.port}/ocpp/ZPR100001", subprotocols=["ocpp1.6"],
                               additional_headers=auth_header("ZPR100001", PASSWORDS["ZPR100001"])) as ws:
                charge_point = SimulatedChargePoint("ZPR100001", ws, result)
                listener = asyncio.create_task(charge_point.start())
                await asyncio.sleep(0.05)
                status = await central.change_configuration("ZPR100001", "MeterValueSampleInterval", "60")
                profile_status = await central.set_charging_profile("ZPR100001", 1, profile)
                admin = await send_admin_command(
                    f"ws://127.0.0.1:{central.port}/admin", "admin-token-123", "ZPR100001",
                    "ChangeConfiguration", {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register"},
                )
                not_connected = await send_admin_command(
                    f"ws://127.0.0.1:{central.port}/admin", "admin-token-123", "ZPR999999",
                    "ChangeConfiguration", {"key": "A", "value": "1"},
                )
                with pytest.raises(InvalidStatus):
                    await send_admin_command(f"ws://127.0.0.1:{central.port}/admin", "wrong", "ZPR100001",
                                             "ChangeConfiguration", {"key": "A", "value": "1"})
                listener.cancel()
        return status, profile_status, admin, not_connected, result

    status, profile_status, admin, not_connected, result = asyncio.run(scenario())
    assert status == "Accepted" and profile_status == "Accepted"
    assert admin == {"ok": True, "result": {"status": "Accepted"}}
    assert not_connected["ok"] is False and "not connected" in not_connected["error"]
    assert result.configuration == {
        "MeterValueSampleInterval": "60", "MeterValuesSampledData": "Energy.Active.Import.Register",
    }
    assert result.charging_profiles[0]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 10.0
    outgoing = [r for r in spool_records(tmp_path / "spool") if r["direction"] == "out"]
    assert [json.loads(r["message"])[2] for r in outgoing] == [
        "ChangeConfiguration", "SetChargingProfile", "ChangeConfiguration",
    ]


def test_admin_hook_is_off_without_a_token(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool") as central:
            with pytest.raises(InvalidStatus) as refused:
                await send_admin_command(f"ws://127.0.0.1:{central.port}/admin", "x", "ZPR100001",
                                         "ChangeConfiguration", {"key": "A", "value": "1"})
            return refused.value.response.status_code

    assert asyncio.run(scenario()) == 404


# -- answers that answer nothing ------------------------------------------------------------


def test_unsolicited_answers_are_dropped_counted_and_not_spooled_but_real_answers_are(tmp_path):
    async def scenario():
        result = SimulationResult("ZPR100001")
        async with running(tmp_path / "spool") as central:
            async with raw_client(central) as ws:
                for n in range(40):
                    await ws.send(json.dumps([3, f"stray-{n}", {"status": "Accepted"}]))
                    await ws.send(json.dumps([4, f"err-{n}", "GenericError", "nothing asked", {}]))
                assert (await exchange(ws, [2, "hb", "Heartbeat", {}]))[0] == 3
            dropped_before_call = central.unsolicited_dropped
            async with connect(f"ws://127.0.0.1:{central.port}/ocpp/ZPR100001", subprotocols=["ocpp1.6"],
                               additional_headers=auth_header("ZPR100001", PASSWORDS["ZPR100001"])) as ws:
                charge_point = SimulatedChargePoint("ZPR100001", ws, result)
                listener = asyncio.create_task(charge_point.start())
                await asyncio.sleep(0.05)
                status = await central.change_configuration("ZPR100001", "MeterValueSampleInterval", "60")
                # The same answer again answers nothing any more.
                await ws.send(json.dumps([3, "replayed", {"status": "Accepted"}]))
                await asyncio.sleep(0.05)
                listener.cancel()
            return dropped_before_call, central.unsolicited_dropped, status

    before, after, status = asyncio.run(scenario())
    assert before == 80 and after == 81 and status == "Accepted"
    records = list(spool_records(tmp_path / "spool"))
    incoming = [json.loads(r["message"]) for r in records if r["direction"] == "in"]
    assert not any(str(m[1]).startswith(("stray-", "err-", "replayed")) for m in incoming)
    # The one solicited answer (to ChangeConfiguration) is spooled with the call it answers.
    answers = [m for m in incoming if m[0] == 3]
    calls = [json.loads(r["message"]) for r in records if r["direction"] == "out"]
    assert len(answers) == 1 and answers[0][1] == calls[0][1]


#: The central system alone (the console script would also import the analysis stack).
FLOOD_SERVER = """
import sys
from pathlib import Path
from zapanalytics.ingest.ocpp.server import ServerSettings, load_credentials, run_server
settings = ServerSettings(spool_dir=Path(sys.argv[1]), port=0, credentials=load_credentials(Path(sys.argv[2])))
run_server(settings, on_ready=lambda port: print(f"ws://127.0.0.1:{port}/ocpp/", flush=True))
"""


def _rss_mb(process) -> float:
    return process.memory_info().rss / 2**20


def test_an_answer_flood_leaves_server_memory_flat_and_the_spool_load_stores_none(tmp_path):
    """8,000 answers of 30 KB that answer nothing, from an authenticated charge point."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    import psutil

    from zapanalytics.ingest.ocpp.load import load_spool
    from zapanalytics.store import open_store

    credentials = tmp_path / "cps.json"
    credentials.write_text(json.dumps(PASSWORDS))
    spool = tmp_path / "spool"
    server = subprocess.Popen(
        [sys.executable, "-c", FLOOD_SERVER, str(spool), str(credentials)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        banner = server.stdout.readline()
        port = int(banner.split("ws://127.0.0.1:", 1)[1].split("/", 1)[0])
        process = psutil.Process(server.pid)
        padding = "x" * 30_000

        async def flood(frames: int) -> None:
            async with connect(f"ws://127.0.0.1:{port}/ocpp/ZPR100001", subprotocols=["ocpp1.6"],
                               additional_headers=auth_header("ZPR100001", PASSWORDS["ZPR100001"]),
                               max_size=2**20) as ws:
                assert (await exchange(ws, [2, "hb-0", "Heartbeat", {}]))[0] == 3
                for n in range(frames):
                    await ws.send(f'[3,"flood-{n}",{{"data":"{padding}"}}]')
                # Frames are handled in order: this answer comes after every flood frame.
                assert (await exchange(ws, [2, "hb-1", "Heartbeat", {}]))[0] == 3

        asyncio.run(flood(50))  # warm: imports, first connection, spool segment
        idle = _rss_mb(process)
        peak = [idle]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _rss_mb(process))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            asyncio.run(flood(8000))
        finally:
            done.set()
            sampler.join()
        after = _rss_mb(process)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0, server.stderr.read()
    print(f"server RSS idle {idle:.0f} MB, peak {peak[0]:.0f} MB, after {after:.0f} MB")
    assert after - idle < 50, (idle, after)
    assert peak[0] - idle < 50, (idle, peak[0])
    records = list(spool_records(spool))
    assert len(records) == 4  # the four heartbeats, each with its answer
    con = open_store(tmp_path / "store.duckdb")
    try:
        report = load_spool(con, spool)
        assert report.counts.rows_in == 4 and report.counts.rows_quarantined == 0
        stored = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
        assert stored == 0
    finally:
        con.close()


def test_the_login_throttle_forgets_sprayed_ids_before_addresses():
    clock = [0.0]
    throttle = LoginThrottle(clock=lambda: clock[0])
    for n in range(30_000):
        throttle.failed("peer:10.9.8.7", f"id:CP{n}")
    assert len(throttle._failures) <= 10_001
    # The spraying address is still remembered and slowed down.
    assert throttle.delay_s("peer:10.9.8.7") == throttle.max_delay_s


def test_connections_past_the_limit_get_503_and_a_reconnect_still_replaces(tmp_path):
    async def scenario():
        async with running(tmp_path / "spool", max_connections=1) as central:
            async with raw_client(central, "ZPR100001") as first:
                assert (await exchange(first, [2, "a", "Heartbeat", {}]))[0] == 3
                with pytest.raises(InvalidStatus) as refused:
                    async with raw_client(central, "ZPR100002"):
                        pass
                async with raw_client(central, "ZPR100001") as again:  # the same id replaces itself
                    assert (await exchange(again, [2, "b", "Heartbeat", {}]))[0] == 3
            return refused.value.response.status_code

    assert asyncio.run(scenario()) == 503
