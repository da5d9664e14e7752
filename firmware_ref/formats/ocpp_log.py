"""OCPP 1.6J message logs of the chargers, as a central system would record them.

One file per charge point, ``ocpp/<ChargePointId>.jsonl`` (the charge point id is the
charger's ``DeviceId``), one message per line::

    {"ts": "2025-10-01T17:03:12.417Z", "charge_point_id": "ZPR123456",
     "direction": "cp_to_cs", "message": [2, "<uid>", "MeterValues", {...}]}

``ts`` is when the central system sent or received the message (true UTC);
``direction`` is ``cp_to_cs`` or ``cs_to_cp``; ``message`` the OCPP-J frame, a CALL
``[2, uid, Action, payload]`` or a CALLRESULT ``[3, uid, payload]``. Timestamps inside
payloads come from the charger's clock (so a drifting clock shows).

What a charger sends, as Zaptec chargers do (``zaptec_api.md`` §6): BootNotification
and StatusNotification Available at the start; for each session StatusNotification
Preparing at plug-in, Authorize with the RFID tag, StartTransaction (``meterStart`` in
Wh), StatusNotification Charging / SuspendedEVSE / SuspendedEV as the session goes,
MeterValues every ``MeterValueSampleInterval`` during the transaction (default 120 s;
context and location left at OCPP's defaults, ``Sample.Periodic`` and ``Outlet``) with
the measurands Zaptec sends: ``Energy.Active.Import.Register`` [kWh],
``Power.Active.Import`` [W], ``Power.Offered`` [W] and ``Current.Import`` on
``L1-N``/``L2-N``/``L3-N`` [A]; StopTransaction (``meterStop`` in Wh, reason
``EVDisconnected``, ``transactionData`` with the begin and end register) and
StatusNotification Available. When the interval differs from Zaptec's 120 s default,
the log starts with the central system's ChangeConfiguration of
``MeterValueSampleInterval``.

A :class:`~firmware_ref.faults.LostOcppMessages` fault drops every message of the
charger in its window (calls and their answers).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from firmware_ref.formats._time import iso_z_ms
from firmware_ref.sim_timeline import epoch_to_datetime

__all__ = ["write_ocpp_logs"]

ZAPTEC_DEFAULT_SAMPLE_INTERVAL_S = 120.0
_MODEL_NAMES = {"pro": "ZapCharger Pro", "home": "ZAPTEC HOME", "go": "Zaptec Go"}


def _epoch(ts: datetime) -> float:
    return ts.timestamp()


class _Log:
    """Collects the messages of one charge point."""

    def __init__(self, charge_point_id: str, rng: np.random.Generator, clock) -> None:
        self.cp = charge_point_id
        self.rng = rng
        self.clock = clock
        self.rows: list[tuple[float, int, str, str, bool]] = []
        self.seq = 0

    def uid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.bytes(16), version=4))

    def stamp(self, t: float) -> str:
        """A charger-clock timestamp for a payload."""
        return iso_z_ms(epoch_to_datetime(float(self.clock(np.array([t]))[0])))

    def _add(self, t: float, direction: str, message: list, uid: str, is_call: bool) -> None:
        line = json.dumps(
            {
                "ts": iso_z_ms(epoch_to_datetime(t)),
                "charge_point_id": self.cp,
                "direction": direction,
                "message": message,
            },
            separators=(",", ":"),
        )
        self.seq += 1
        self.rows.append((round(t, 3), self.seq, line, uid, is_call))

    def call(self, t: float, action: str, payload: dict, answer: dict, from_cs: bool = False):
        uid = self.uid()
        latency = float(self.rng.uniform(0.03, 0.25))
        first, second = ("cs_to_cp", "cp_to_cs") if from_cs else ("cp_to_cs", "cs_to_cp")
        self._add(t, first, [2, uid, action, payload], uid, True)
        self._add(t + latency, second, [3, uid, answer], uid, False)


def _energy_kwh_text(register_wh: int) -> str:
    return f"{register_wh // 1000}.{register_wh % 1000:03d}"


def _status(log: _Log, t: float, status: str) -> None:
    log.call(
        t,
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": status,
            "timestamp": log.stamp(t),
        },
        {},
    )


def _charger_messages(result, c: int, interval_s: float, rng: np.random.Generator) -> _Log:
    chargers = result.chargers
    device_id = chargers["device_id"][c]
    charger_id = chargers["charger_id"][c]
    log = _Log(device_id, rng, lambda t: result.reported_time(c, t))
    start_s = _epoch(result.installation["start_utc"])
    boot = start_s + float(rng.uniform(5.0, 60.0))
    log.call(
        boot,
        "BootNotification",
        {
            "chargePointVendor": "Zaptec",
            "chargePointModel": _MODEL_NAMES[result.installation["model"]],
            "chargePointSerialNumber": device_id,
            "firmwareVersion": result.installation["firmware_version"],
        },
        {"status": "Accepted", "currentTime": iso_z_ms(epoch_to_datetime(boot + 0.1)), "interval": 3600},
    )
    _status(log, boot + 1.0, "Available")
    if interval_s != ZAPTEC_DEFAULT_SAMPLE_INTERVAL_S:
        log.call(
            boot + 3.0,
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": str(int(interval_s))},
            {"status": "Accepted"},
            from_cs=True,
        )

    sessions = result.sessions.filter(
        (pl.col("charger_id") == charger_id) & ~pl.col("is_void")
    ).sort("start_utc")
    modes = result.state_observations.filter(
        (pl.col("charger_id") == charger_id) & (pl.col("state_id") == 710)
    )
    mode_t = modes["ts_utc"].dt.epoch("us").to_numpy() / 1e6
    mode_v = modes["value"].to_list()
    timeline = result.timelines[c]
    for row in sessions.iter_rows(named=True):
        plug = _epoch(row["plug_in_utc"])
        start = _epoch(row["start_utc"])
        end = _epoch(row["end_utc"])
        tag = row["rfid_tag"]
        tx = int(row["ocpp_transaction_id"])
        _status(log, plug + 0.5, "Preparing")
        log.call(start - 0.6, "Authorize", {"idTag": tag}, {"idTagInfo": {"status": "Accepted"}})
        log.call(
            start,
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": tag,
                "meterStart": int(row["register_start_wh"]),
                "timestamp": log.stamp(start),
            },
            {"transactionId": tx, "idTagInfo": {"status": "Accepted"}},
        )
        # Status changes during the session, from the operation mode (710).
        has_charged = False
        last = "Preparing"
        in_session = np.flatnonzero((mode_t > start) & (mode_t < end))
        for i in in_session.tolist():
            mode = mode_v[i]
            if mode == "3":
                status, has_charged = "Charging", True
            elif mode == "5":
                status = "SuspendedEV"
            elif mode == "2":
                status = "SuspendedEVSE" if has_charged else "Preparing"
            else:
                continue
            if status != last:
                _status(log, float(mode_t[i]) + 0.2, status)
                last = status
        # Periodic meter values during the transaction.
        sample_t = start + interval_s * np.arange(1, int((end - start) // interval_s) + 1)
        sample_t = sample_t[sample_t < end]
        if sample_t.size:
            registers = timeline.register_wh(sample_t)
            power = timeline.power_w_at(sample_t)
            currents = timeline.terminal_currents_at(sample_t)
            offered = result.offered_power_w_at(c, sample_t)
            for k in range(sample_t.size):
                t = float(sample_t[k])
                # Context (Sample.Periodic) and location (Outlet) are OCPP's defaults.
                values = [
                    {
                        "value": _energy_kwh_text(int(registers[k])),
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh",
                    },
                    {"value": f"{power[k]:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": f"{offered[k]:.0f}", "measurand": "Power.Offered", "unit": "W"},
                ]
                for p, phase in enumerate(("L1-N", "L2-N", "L3-N")):
                    values.append(
                        {
                            "value": f"{currents[k, p]:.2f}",
                            "measurand": "Current.Import",
                            "phase": phase,
                            "unit": "A",
                        }
                    )
                log.call(
                    t,
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": tx,
                        "meterValue": [{"timestamp": log.stamp(t), "sampledValue": values}],
                    },
                    {},
                )
        begin_wh = int(row["register_start_wh"])
        end_wh = int(row["register_end_wh"])
        log.call(
            end,
            "StopTransaction",
            {
                "transactionId": tx,
                "idTag": tag,
                "meterStop": end_wh,
                "timestamp": log.stamp(end),
                "reason": "EVDisconnected",
                "transactionData": [
                    {
                        "timestamp": log.stamp(start),
                        "sampledValue": [
                            {
                                "value": _energy_kwh_text(begin_wh),
                                "context": "Transaction.Begin",
                                "measurand": "Energy.Active.Import.Register",
                                "location": "Outlet",
                                "unit": "kWh",
                            }
                        ],
                    },
                    {
                        "timestamp": log.stamp(end),
                        "sampledValue": [
                            {
                                "value": _energy_kwh_text(end_wh),
                                "context": "Transaction.End",
                                "measurand": "Energy.Active.Import.Register",
                                "location": "Outlet",
                                "unit": "kWh",
                            }
                        ],
                    },
                ],
            },
            {"idTagInfo": {"status": "Accepted"}},
        )
        _status(log, end + 1.0, "Available")
    return log


def write_ocpp_logs(
    result,
    out_dir: Path,
    charge_points: tuple[str, ...] | None = None,
    meter_value_interval_s: float = ZAPTEC_DEFAULT_SAMPLE_INTERVAL_S,
) -> tuple[list[Path], dict[str, int]]:
    """Write OCPP 1.6J message logs.

    Parameters
    ----------
    result : SimulationResult
        Simulation output.
    out_dir : pathlib.Path
        Dataset root; files go to ``ocpp/``.
    charge_points : tuple of str, optional
        Device ids of the chargers to log; default all.
    meter_value_interval_s : float
        ``MeterValueSampleInterval`` [s].

    Returns
    -------
    (list of pathlib.Path, dict)
        Files written, and the number of messages lost per charge point to
        :class:`~firmware_ref.faults.LostOcppMessages` faults.
    """
    ocpp_dir = out_dir / "ocpp"
    ocpp_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(ocpp_dir.glob("*.jsonl")):
        old.unlink()
    device_ids = result.chargers["device_id"].to_list()
    wanted = device_ids if charge_points is None else list(charge_points)
    unknown = sorted(set(wanted) - set(device_ids))
    if unknown:
        raise ValueError(f"unknown charge points: {unknown}")
    lost_windows: dict[str, list[tuple[float, float]]] = {}
    for fault in result.faults:
        if fault.kind == "lost_ocpp_messages":
            lost_windows.setdefault(fault.device_id, []).append(
                (_epoch(fault.start_utc), _epoch(fault.end_utc))
            )
    written: list[Path] = []
    lost: dict[str, int] = {}
    for c, device_id in enumerate(device_ids):
        if device_id not in wanted:
            continue
        rng = np.random.default_rng([result.seed, c, 1616])
        log = _charger_messages(result, c, float(meter_value_interval_s), rng)
        rows = sorted(log.rows)
        windows = lost_windows.get(device_id, [])
        if windows:
            # A call made inside a window is lost, and so is its answer.
            gone = {r[3] for r in rows if r[4] and any(a <= r[0] < b for a, b in windows)}
            kept = [r for r in rows if r[3] not in gone]
            lost[device_id] = len(rows) - len(kept)
            rows = kept
        path = ocpp_dir / f"{device_id}.jsonl"
        path.write_text("".join(r[2] + "\n" for r in rows), encoding="utf-8")
        written.append(path)
    return written, lost
