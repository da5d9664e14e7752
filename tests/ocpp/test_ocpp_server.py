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
