"""Charger state machine: boot, authentication, queueing, soft start, derating, eco mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from firmware_ref.charger import (
    AUTH_FAILED_DISPLAY_S,
    AUTH_OK_DISPLAY_S,
    GO,
    HOME,
    MODELS,
    PRO,
    AuthMode,
    Charger,
    ChargerState,
    OperationMode,
    Product,
    derated_current_a,
    derating_level,
    eco_charging_slots,
    ocpp_status_for,
    operation_mode_for,
    slots_to_windows,
)
from firmware_ref.pilot import CpState

S = ChargerState
T0 = datetime(2025, 3, 1, 17, 0, tzinfo=UTC).timestamp()


def charging_charger(model=PRO, allocation_a=16.0, **kwargs) -> Charger:
    charger = Charger(model, "ZCS000001", t_s=T0, **kwargs)
    charger.set_allocation(T0, allocation_a)
    assert charger.connect_car(T0 + 1.0) is S.CHARGING
    return charger


@pytest.mark.parametrize(("model", "low_s", "high_s"), [(HOME, 60.0, 120.0), (PRO, 120.0, 180.0)])
def test_boot_time_is_within_the_manuals_range(model, low_s, high_s):
    charger = Charger(model, "X", t_s=T0, state=S.UNPOWERED)
    assert charger.power_on(T0) is S.BOOTING
    boot_end = charger.next_event_s
    assert low_s <= boot_end - T0 <= high_s
    assert charger.advance(boot_end - 0.001) is S.BOOTING
    assert charger.advance(boot_end) is S.READY


def test_models_hold_their_constants_in_one_place():
    assert MODELS[Product.HOME] is HOME and MODELS[Product.PRO] is PRO and MODELS[Product.GO] is GO
    assert (HOME.max_installation_fuse_a, PRO.max_installation_fuse_a) == (40.0, 63.0)
    assert HOME.max_chargers_per_installation == 3
    assert PRO.ocmf_gateway_id == "Zaptec Pro MID"
    assert PRO.periodic_meter_interval_s == 900.0 and GO.periodic_meter_interval_s == 3600.0


def test_free_charging_session_walks_through_the_operation_modes():
    charger = Charger(PRO, "ZCS000001", t_s=T0)
    assert charger.operation_mode is OperationMode.DISCONNECTED
    assert charger.cp_state is CpState.A
    assert charger.connect_car(T0 + 10.0, requesting=False) is S.CONNECTED
    assert charger.operation_mode is OperationMode.CONNECTED_REQUESTING
    assert charger.cp_state is CpState.B
    assert charger.ev_requests_energy(T0 + 20.0, True) is S.QUEUED  # no allocation yet
    assert charger.offered_current_a == 0.0
    assert charger.set_allocation(T0 + 30.0, 16.0) is S.CHARGING
    assert charger.operation_mode is OperationMode.CONNECTED_CHARGING
    assert charger.cp_state is CpState.C
    assert charger.ev_requests_energy(T0 + 7200.0, False) is S.FINISHED
    assert charger.operation_mode is OperationMode.CONNECTED_FINISHED
    assert charger.disconnect_car(T0 + 9000.0) is S.READY
    assert charger.operation_mode is OperationMode.DISCONNECTED


def test_allocation_below_six_amps_queues_the_car():
    charger = charging_charger(allocation_a=16.0)
    assert charger.set_allocation(T0 + 100.0, 5.9) is S.QUEUED
    assert charger.offered_current_a == 0.0
    assert charger.set_allocation(T0 + 200.0, 6.0) is S.CHARGING


def test_soft_start_caps_the_first_seconds_at_six_amps():
    charger = charging_charger(allocation_a=32.0)
    assert charger.offered_current_a == 6.0
    assert charger.next_event_s == T0 + 1.0 + PRO.soft_start_s
    charger.advance(T0 + 1.0 + PRO.soft_start_s - 0.1)
    assert charger.offered_current_a == 6.0
    charger.advance(T0 + 1.0 + PRO.soft_start_s)
    assert charger.offered_current_a == 32.0


def test_rfid_on_allow_list_authenticates_locally():
    charger = Charger(HOME, "ZCH000001", t_s=T0, auth_mode=AuthMode.RFID, allow_list=["04AA"])
    charger.set_allocation(T0, 16.0)
    assert charger.connect_car(T0 + 1.0) is S.WAITING_FOR_AUTHENTICATION
    assert charger.offered_current_a == 0.0
    assert charger.present_rfid(T0 + 5.0, "04AA") is S.AUTHENTICATION_OK
    assert charger.next_event_s == T0 + 5.0 + AUTH_OK_DISPLAY_S
    assert charger.advance(T0 + 5.0 + AUTH_OK_DISPLAY_S) is S.CHARGING


def test_unknown_tag_asks_the_cloud_online_and_fails_offline():
    charger = Charger(PRO, "ZCS000001", t_s=T0, auth_mode=AuthMode.RFID, allow_list=["04AA"])
    charger.set_allocation(T0, 16.0)
    charger.connect_car(T0 + 1.0)
    assert charger.present_rfid(T0 + 2.0, "04BB") is S.WAITING_FOR_CLOUD
    assert charger.cloud_authorization(T0 + 3.0, accepted=False) is S.AUTHENTICATION_FAILED
    assert charger.advance(T0 + 3.0 + AUTH_FAILED_DISPLAY_S) is S.WAITING_FOR_AUTHENTICATION
    charger.set_online(T0 + 20.0, False)
    assert charger.present_rfid(T0 + 21.0, "04BB") is S.AUTHENTICATION_FAILED
    assert charger.present_rfid(T0 + 22.0, "04AA") is S.AUTHENTICATION_OK


def test_cloud_start_by_app_or_payment_operator():
    charger = Charger(PRO, "ZCS000001", t_s=T0, auth_mode=AuthMode.CLOUD)
    charger.set_allocation(T0, 10.0)
    assert charger.connect_car(T0 + 1.0) is S.WAITING_FOR_AUTHENTICATION
    assert charger.present_rfid(T0 + 2.0, "04CC") is S.WAITING_FOR_CLOUD
    assert charger.cloud_authorization(T0 + 4.0, accepted=True) is S.AUTHENTICATION_OK
    assert charger.advance(T0 + 60.0) is S.CHARGING


def test_cloud_mode_offline_waits_for_the_cloud():
    charger = Charger(PRO, "ZCS000001", t_s=T0, auth_mode=AuthMode.CLOUD, online=False)
    assert charger.state is S.OFFLINE
    assert charger.connect_car(T0 + 1.0) is S.WAITING_FOR_CLOUD
    assert charger.cloud_authorization(T0 + 2.0, accepted=True) is S.WAITING_FOR_CLOUD
    assert charger.set_online(T0 + 3.0, True) is S.WAITING_FOR_AUTHENTICATION


def test_offline_charging_continues_at_the_offline_current():
    charger = charging_charger(allocation_a=32.0)
    charger.advance(T0 + 100.0)
    assert charger.offered_current_a == 32.0
    assert charger.set_online(T0 + 200.0, False) is S.CHARGING
    assert charger.offered_current_a == 6.0
    charger.set_online(T0 + 300.0, True)
    assert charger.offered_current_a == 32.0
    charger.set_online(T0 + 400.0, False)
    assert charger.disconnect_car(T0 + 500.0) is S.OFFLINE


def test_not_activated_charger_does_not_charge():
    charger = Charger(HOME, "ZCH000001", t_s=T0, activated=False)
    assert charger.state is S.NOT_ACTIVATED
    charger.set_allocation(T0, 16.0)
    assert charger.connect_car(T0 + 1.0) is S.NOT_ACTIVATED
    assert charger.offered_current_a == 0.0
    assert charger.set_activated(T0 + 2.0, True) is S.CHARGING


def test_error_latches_until_unplug_or_repair():
    charger = charging_charger()
    assert charger.fault(T0 + 50.0) is S.ERROR
    assert charger.offered_current_a == 0.0
    assert charger.cp_state is CpState.F
    assert charger.set_allocation(T0 + 60.0, 32.0) is S.ERROR
    assert charger.disconnect_car(T0 + 70.0) is S.READY

    charger.connect_car(T0 + 80.0)
    charger.fault(T0 + 90.0, persistent=True)
    assert charger.disconnect_car(T0 + 100.0) is S.ERROR
    assert charger.clear_fault(T0 + 110.0) is S.READY


def test_firmware_update_is_refused_during_a_session_then_reboots():
    charger = charging_charger(model=HOME)
    assert charger.start_firmware_update(T0 + 10.0, 300.0) is S.CHARGING
    charger.disconnect_car(T0 + 20.0)
    assert charger.start_firmware_update(T0 + 30.0, 300.0) is S.FIRMWARE_UPDATING
    assert charger.advance(T0 + 330.0) is S.BOOTING
    assert charger.advance(T0 + 330.0 + HOME.boot_time_s) is S.READY


def test_car_plugged_in_during_boot_starts_its_session_after_boot():
    charger = Charger(PRO, "ZCS000001", t_s=T0, state=S.UNPOWERED)
    charger.set_allocation(T0, 16.0)
    charger.power_on(T0)
    assert charger.connect_car(T0 + 10.0) is S.BOOTING
    assert charger.advance(T0 + PRO.boot_time_s) is S.CHARGING
    assert charger.power_loss(T0 + 1000.0) is S.UNPOWERED
    assert charger.offered_current_a == 0.0


def test_cable_lock():
    charger = Charger(HOME, "ZCH000001", t_s=T0)
    assert not charger.cable_locked
    charger.connect_car(T0 + 1.0)
    assert charger.cable_locked
    charger.disconnect_car(T0 + 2.0)
    assert not charger.cable_locked
    charger.set_permanent_cable_lock(T0 + 3.0, True)
    assert charger.cable_locked
    charger.power_loss(T0 + 4.0)
    assert charger.cable_locked


def test_time_must_not_run_backwards():
    charger = Charger(PRO, "ZCS000001", t_s=T0)
    with pytest.raises(ValueError):
        charger.connect_car(T0 - 1.0)


@pytest.mark.parametrize(
    ("temperatures", "levels"),
    [
        ([20.0, 59.9, 60.0, 64.9, 65.0], [0, 0, 1, 1, 2]),
        ([62.0, 56.0, 55.0, 54.9], [1, 1, 1, 0]),
        ([81.0, 76.0, 74.9, 69.0, 20.0], [5, 5, 4, 3, 0]),
    ],
)
def test_derating_steps_with_hysteresis(temperatures, levels):
    level = 0
    seen = []
    for temperature in temperatures:
        level = derating_level(temperature, level)
        seen.append(level)
    assert seen == levels


def test_derated_current_limits():
    assert [derated_current_a(level, 32.0) for level in range(6)] == [32, 28, 24, 20, 16, 0]
    assert derated_current_a(1, 16.0) == 16.0


def test_charger_derates_and_recovers_with_hysteresis():
    charger = charging_charger(allocation_a=32.0)
    charger.advance(T0 + 100.0)
    charger.set_temperature(T0 + 200.0, 61.0)
    assert charger.offered_current_a == 28.0
    charger.set_temperature(T0 + 300.0, 57.0)
    assert charger.offered_current_a == 28.0
    charger.set_temperature(T0 + 400.0, 54.0)
    assert charger.offered_current_a == 32.0
    assert charger.set_temperature(T0 + 500.0, 85.0) is S.QUEUED
    assert charger.set_temperature(T0 + 600.0, 70.0) is S.CHARGING
    charger.advance(T0 + 700.0)
    assert charger.offered_current_a == 16.0


def test_eco_slots_pick_the_cheapest_hours_before_departure():
    starts = [T0 + 3600.0 * h for h in range(12)]
    prices = [9, 8, 3, 7, 1, 5, 1, 6, 0, 0, 2, 4]
    chosen = eco_charging_slots(starts, prices, T0, T0 + 8 * 3600.0, 20.0, 7.36)
    assert chosen == (starts[2], starts[4], starts[6])  # 20 kWh at 7.36 kW needs 3 hours
    assert eco_charging_slots(starts, prices, T0, T0 + 2 * 3600.0, 100.0, 7.36) == tuple(
        starts[:2]
    )
    assert eco_charging_slots(starts, prices, T0 + 1.0, T0 + 12 * 3600.0, 7.36, 7.36) == (
        starts[8],
    )
    assert eco_charging_slots(starts, prices, T0, T0 + 12 * 3600.0, 0.0, 7.36) == ()


def test_eco_slots_on_the_autumn_dst_night_in_oslo():
    oslo = ZoneInfo("Europe/Oslo")
    start = datetime(2025, 10, 25, 22, 0, tzinfo=UTC)  # midnight local time, 26 October
    starts = [(start + timedelta(hours=h)).timestamp() for h in range(25)]
    local_hours = [datetime.fromtimestamp(s, oslo).hour for s in starts]
    assert local_hours.count(2) == 2  # 02:00 occurs twice: the day has 25 hours
    prices = [1.0 if hour == 2 else 5.0 for hour in local_hours]
    chosen = eco_charging_slots(starts, prices, starts[0], starts[-1] + 3600.0, 14.0, 7.0)
    assert len(chosen) == 2
    assert [datetime.fromtimestamp(s, oslo).hour for s in chosen] == [2, 2]
    assert chosen[1] - chosen[0] == 3600.0


def test_slots_to_windows_merges_neighbours():
    assert slots_to_windows([7200.0, 0.0, 3600.0, 14400.0]) == ((0.0, 10800.0), (14400.0, 18000.0))


def test_charger_charges_only_inside_eco_windows():
    charger = Charger(HOME, "ZCH000001", t_s=T0)
    charger.set_allocation(T0, 16.0)
    charger.set_eco_windows(T0, [(T0 + 3600.0, T0 + 7200.0)])
    assert charger.connect_car(T0 + 10.0) is S.QUEUED
    assert charger.next_event_s == T0 + 3600.0
    assert charger.advance(T0 + 3600.0) is S.CHARGING
    assert charger.advance(T0 + 7200.0) is S.QUEUED
    assert charger.set_eco_windows(T0 + 7300.0, None) is S.CHARGING


def test_operation_mode_for_every_state():
    for state in ChargerState:
        mode = operation_mode_for(state, car_connected=True)
        expected = {
            S.CHARGING: OperationMode.CONNECTED_CHARGING,
            S.FINISHED: OperationMode.CONNECTED_FINISHED,
        }.get(state, OperationMode.CONNECTED_REQUESTING)
        assert mode is expected
    assert operation_mode_for(S.READY, car_connected=False) is OperationMode.DISCONNECTED
    assert [int(m) for m in OperationMode] == [0, 1, 2, 3, 5]


def test_ocpp_status_mapping():
    assert ocpp_status_for(S.READY) == "Available"
    assert ocpp_status_for(S.WAITING_FOR_AUTHENTICATION) == "Preparing"
    assert ocpp_status_for(S.CHARGING) == "Charging"
    assert ocpp_status_for(S.QUEUED, has_charged=True) == "SuspendedEVSE"
    assert ocpp_status_for(S.FINISHED) == "SuspendedEV"
    assert ocpp_status_for(S.ERROR) == "Faulted"
    assert ocpp_status_for(S.FIRMWARE_UPDATING) == "Unavailable"
