"""Builders for signed OCMF records and synthetic store frames used by the audit tests."""

from __future__ import annotations

import base64
import json
from functools import cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CURVES = {
    "secp192r1": ec.SECP192R1,
    "secp256k1": ec.SECP256K1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
}

# Zaptec's dialect: colon offsets, comma milliseconds, RU only on the first reading, ZS.
ZAPTEC_SESSION_PAYLOAD = (
    '{"FV":"1.0","GI":"Zaptec Go+","GS":"ZAP123456","GV":"2.1.0.4","PG":"T1","MF":"v1.3.6",'
    '"IS":true,"IL":"TRUSTED","IF":["RFID_RELATED"],"IT":"ISO14443","ID":"04A1B2C3",'
    '"ZS":"7c1f3f36-2c41-4f2e-9d51-1f4a0b1c2d3e","RD":['
    '{"TM":"2025-06-07T09:20:55,943+00:00 R","TX":"B","RV":1537.688,"RI":"1-0:1.8.0",'
    '"RU":"kWh","RT":"AC","ST":"G"},'
    '{"TM":"2025-06-07T12:00:00,000+00:00 R","TX":"T","RV":1542.951,"RI":"1-0:1.8.0","RT":"AC",'
    '"ST":"G"},'
    '{"TM":"2025-06-07T16:46:56,877+00:00 R","TX":"E","RV":1546.403,"RI":"1-0:1.8.0","RT":"AC",'
    '"ST":"G"}]}'
)

# Another vendor's style: spaces in the JSON, RV as padded strings, +0200 offsets, MS.
VENDOR_SESSION_PAYLOAD = (
    '{"FV" : "1.0", "GI" : "SEAL AG", "GS" : "1850006a", "GV" : "1.34", "PG" : "T9289", '
    '"MV" : "Carlo Gavazzi", "MM" : "EM340-DIN.AV2.3.X.S1.PF", "MS" : "******240084S", '
    '"MF" : "B4", "IS" : true, "IL" : "NONE", "IF" : ["RFID_PLAIN", "OCPP_RS_TLS"], '
    '"IT" : "ISO14443", "ID" : "1F2D3A4F5506C7", "TT" : "Tarif A | 0,39 EUR/kWh", '
    '"RD" : [ {"TM" : "2018-07-24T13:22:04,000+0200 S", "TX" : "B", "RV" : "       2935.6", '
    '"RI" : "1-b:1.8.0", "RU" : "kWh", "RT" : "AC", "EF" : "", "ST" : "G"}, '
    '{"TM" : "2018-07-24T13:26:04,000+0200 S", "TX" : "E", "RV" : "       2965.1", '
    '"RI" : "1-b:1.8.0", "RU" : "kWh", "RT" : "AC", "EF" : "", "ST" : "G"} ] }'
)

ZAPTEC_FISCAL_PAYLOAD = (
    '{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR294591","GV":"5.0.2.1","PG":"F1","MF":"v1.3.6",'
    '"RD":[{"TM":"2025-04-09T17:45:00,507+00:00 R","RV":2410.000,"RI":"1-0:1.8.0","RU":"kWh",'
    '"ST":"G"}]}'
)


@cache
def private_key(curve_name: str, index: int = 0) -> ec.EllipticCurvePrivateKey:
    """A fresh key per (curve, index), generated once per test run."""
    return ec.generate_private_key(CURVES[curve_name]())


def key_forms(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as hex DER, base64 DER and PEM."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hex_der": der.hex(),
        "base64_der": base64.b64encode(der).decode("ascii"),
        "pem": pem.decode("ascii"),
    }


def sign(
    payload: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    sa: str | None,
    se: str | None = "base64",
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    """``OCMF|payload|{SA, SE, SD}``; ``None`` leaves a field out."""
    signature = key.sign(payload.encode("utf-8"), ec.ECDSA(hash_algorithm or hashes.SHA256()))
    sd = base64.b64encode(signature).decode("ascii") if se == "base64" else signature.hex()
    section = {k: v for k, v in (("SA", sa), ("SE", se), ("SD", sd)) if v is not None}
    return f"OCMF|{payload}|{json.dumps(section)}"


def tamper_digit(record: str, old: str, new: str) -> str:
    """Replace one occurrence of ``old`` inside the payload section."""
    header, rest = record.split("|", 1)
    assert old in rest
    return header + "|" + rest.replace(old, new, 1)


# --- synthetic store frames -------------------------------------------------------------

ZAPTEC_SA = "ECDSA-secp384r1-SHA256"


def zaptec_tm(ts, offset_s: float = 0.0) -> str:
    """A Zaptec-style TM for a UTC datetime, shifted by a charger clock error [s]."""
    from datetime import timedelta

    shown = ts + timedelta(seconds=offset_s)
    return shown.strftime("%Y-%m-%dT%H:%M:%S,") + f"{shown.microsecond // 1000:03d}+00:00 R"


def zaptec_session_payload(session_id, serial, readings) -> str:
    """readings: (ts, register_wh, tx, tm_offset_s) tuples."""
    parts = []
    for index, (ts, register_wh, tx, offset_s) in enumerate(readings):
        unit = ',"RU":"kWh"' if index == 0 else ""
        parts.append(
            f'{{"TM":"{zaptec_tm(ts, offset_s)}","TX":"{tx}","RV":{register_wh / 1000:.3f},'
            f'"RI":"1-0:1.8.0"{unit},"RT":"AC","ST":"G"}}'
        )
    return (
        f'{{"FV":"1.0","GI":"Zaptec Pro MID","GS":"{serial}","GV":"5.0.2.1","PG":"T1",'
        f'"MF":"v1.3.6","IS":false,"IT":"NONE","ZS":"{session_id}","RD":[' + ",".join(parts) + "]}"
    )


def zaptec_fiscal_payload(serial, ts, register_wh, offset_s: float = 0.0) -> str:
    return (
        f'{{"FV":"1.0","GI":"Zaptec Pro MID","GS":"{serial}","GV":"5.0.2.1","PG":"F1",'
        f'"MF":"v1.3.6","RD":[{{"TM":"{zaptec_tm(ts, offset_s)}","RV":{register_wh / 1000:.3f},'
        f'"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}}]}}'
    )


def build_fleet(
    *,
    chargers=("ZPR000001", "ZPR000002", "ZPR000003"),
    days: int = 12,
    reset_charger: str | None = None,
    tampered: tuple[str, int] | None = None,
    clock_drift_ppm: dict | None = None,
    clock_offset_s: dict | None = None,
    skipped_session: tuple[str, int] | None = None,
    power_kw: float = 7.2,
    seed: int = 11,
):
    """A small store's worth of frames: sessions, energy_details, meter_values,
    charger_states (554 fiscal records and 981 public keys), with injected faults.

    Returns a dict with the frames, the public keys (base64 DER) and the truth.
    """
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    start_day = datetime(2025, 3, 24, tzinfo=UTC)  # spans the EU DST change on 30 March
    sessions, details, meter_values, states = [], [], [], []
    keys = {}
    truth = {"tampered_session": None, "reset_at": None}
    drift = clock_drift_ppm or {}
    step = clock_offset_s or {}
    for charger_index, charger_id in enumerate(chargers):
        key = private_key("secp384r1", index=100 + charger_index)
        keys[charger_id] = key_forms(key)["base64_der"]
        states.append(
            {
                "charger_id": charger_id,
                "ts_utc": start_day,
                "state_id": 981,
                "state_name": "MIDPublicKey",
                "value": keys[charger_id],
            }
        )

        def clock_error(ts, charger_id=charger_id):
            elapsed = (ts - start_day).total_seconds()
            return step.get(charger_id, 0.0) + drift.get(charger_id, 0.0) * 1e-6 * elapsed

        register_wh = 1_000_000 + 250_000 * charger_index
        timeline = []  # (ts, register_wh) change points
        timeline.append((start_day, register_wh))
        for day in range(days):
            day_start = start_day + timedelta(days=day)
            if reset_charger == charger_id and day == days // 2:
                reset_at = day_start + timedelta(hours=12)
                truth["reset_at"] = reset_at
                timeline.append((reset_at, timeline[-1][1]))
                register_wh = 0
                timeline.append((reset_at + timedelta(seconds=1), register_wh))
            begin = day_start + timedelta(
                hours=17, minutes=int(rng.integers(0, 90)), seconds=int(rng.integers(0, 60))
            )
            energy_wh = int(rng.integers(4000, 20000))
            charge_s = energy_wh / 1000 / power_kw * 3600
            end_charge = begin + timedelta(seconds=charge_s)
            end = end_charge + timedelta(minutes=int(rng.integers(5, 120)))
            session_id = f"{charger_id}-s{day:03d}"
            readings = [(begin, register_wh, "B", clock_error(begin))]
            ticks = []
            tick = (begin + timedelta(minutes=15)).replace(second=1, microsecond=0)
            tick = tick.replace(minute=(tick.minute // 15) * 15)
            previous_wh = register_wh
            while tick < end:
                progressed = min((tick - begin).total_seconds() / charge_s, 1.0)
                at_tick = register_wh + round(energy_wh * progressed)
                ticks.append((tick, at_tick - previous_wh))
                previous_wh = at_tick
                tick += timedelta(minutes=15)
            end_wh = register_wh + energy_wh
            ticks.append((end, end_wh - previous_wh))
            readings.append((end, end_wh, "E", clock_error(end)))
            if skipped_session == (charger_id, day):
                # The charger delivered this session but the store never got it.
                register_wh = end_wh
                timeline += [(begin, readings[0][1]), (end_charge, end_wh)]
                continue
            payload = zaptec_session_payload(session_id, charger_id, readings)
            record = sign(payload, key, sa=ZAPTEC_SA)
            meter_stop = end_wh / 1000
            if tampered == (charger_id, day):
                record = tamper_digit(
                    record, f'"RV":{end_wh / 1000:.3f}', f'"RV":{(end_wh + 900) / 1000:.3f}'
                )
                meter_stop = (end_wh + 900) / 1000
                truth["tampered_session"] = session_id
            sessions.append(
                {
                    "session_id": session_id,
                    "charger_id": charger_id,
                    "installation_id": "inst-1",
                    "start_utc": begin,
                    "end_utc": end,
                    "energy_kwh": energy_wh / 1000,
                    "meter_start_kwh": register_wh / 1000,
                    "meter_stop_kwh": meter_stop,
                    "commit_metadata": 1 | 4 | 16,
                    "is_void": False,
                    "is_aborted": False,
                    "is_offline": False,
                    "signed_session": record,
                    "source": "test",
                }
            )
            details.append({"session_id": session_id, "ts_utc": begin, "energy_kwh": 0.0})
            details += [
                {"session_id": session_id, "ts_utc": t, "energy_kwh": wh / 1000} for t, wh in ticks
            ]
            timeline += [(begin, register_wh), (end_charge, end_wh)]
            register_wh = end_wh
        # The register sampled every 15 min, linear while charging, flat otherwise.
        points = sorted(timeline)
        times = np.array([p[0].timestamp() for p in points])
        values = np.array([p[1] for p in points], dtype=float)
        sample = start_day
        last = start_day + timedelta(days=days)
        while sample <= last:
            index = np.searchsorted(times, sample.timestamp(), side="right") - 1
            if index + 1 < len(times) and values[index + 1] >= values[index]:
                span = times[index + 1] - times[index]
                fraction = (sample.timestamp() - times[index]) / span if span else 0.0
                value_wh = round(values[index] + fraction * (values[index + 1] - values[index]))
            else:
                value_wh = int(values[index])
            meter_values.append(
                {
                    "charger_id": charger_id,
                    "ts_utc": sample,
                    "source": "zaptec_state",
                    "energy_register_kwh": value_wh / 1000,
                }
            )
            if sample.minute == 0 and sample.hour % 6 == 0:
                fiscal = sign(
                    zaptec_fiscal_payload(charger_id, sample, value_wh, clock_error(sample)),
                    key,
                    sa=ZAPTEC_SA,
                )
                states.append(
                    {
                        "charger_id": charger_id,
                        "ts_utc": sample,
                        "state_id": 554,
                        "state_name": "SignedMeterValue",
                        "value": fiscal,
                    }
                )
            sample += timedelta(minutes=15)
    utc = pl.Datetime("us", "UTC")
    return {
        "sessions": pl.DataFrame(sessions).with_columns(pl.col("start_utc", "end_utc").cast(utc)),
        "energy_details": pl.DataFrame(details).with_columns(pl.col("ts_utc").cast(utc)),
        "meter_values": pl.DataFrame(meter_values).with_columns(pl.col("ts_utc").cast(utc)),
        "charger_states": pl.DataFrame(states).with_columns(pl.col("ts_utc").cast(utc)),
        "public_keys": keys,
        "truth": truth,
    }


def build_metered(
    *,
    gains: dict,
    reference_gains: dict | None = None,
    days: int = 6,
    imax_a: float = 32.0,
    charger_q_kwh: float = 0.001,
    reference_q_kwh: float = 0.01,
    reference_lag_s: int = 2,
    seed: int = 5,
):
    """One-minute charger registers and sub-meter registers for chargers with known
    meter gain errors (fractions, e.g. 0.018 for +1.8 %).

    Each day each charger charges in three stages: at 30 A (above 50 % of Imax), at
    10 A (10-50 %) and a tail at 2 A (below 10 %). The reference meter samples
    ``reference_lag_s`` after the charger.
    """
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    reference_gains = reference_gains or {}
    start = datetime(2025, 10, 20, tzinfo=UTC)  # spans the EU DST change on 26 October
    minutes = days * 24 * 60
    meter_rows, reference_rows = [], []
    for index, (charger_id, gain) in enumerate(gains.items()):
        current = np.zeros(minutes)
        for day in range(days):
            begin = day * 1440 + 9 * 60 + int(rng.integers(0, 60))
            current[begin : begin + 150] = 30.0 + rng.normal(0, 0.3, 150)
            current[begin + 150 : begin + 330] = 10.0 + rng.normal(0, 0.2, 180)
            current[begin + 330 : begin + 600] = 2.0 + rng.normal(0, 0.05, 270)
        # Three phases at 230 V: true energy per minute [kWh].
        true_kwh = np.cumsum(3 * 230.0 * current / 1000 / 60)
        true_kwh = np.concatenate([[0.0], true_kwh[:-1]]) + 500.0 + 100 * index
        charger_kwh = np.floor(true_kwh * (1 + gain) / charger_q_kwh) * charger_q_kwh
        ref_gain = reference_gains.get(charger_id, 0.0)
        # The reference reads a little later: the energy of those seconds is included.
        lag_kwh = 3 * 230.0 * current / 1000 / 3600 * reference_lag_s
        reference_kwh = (
            np.floor((true_kwh + lag_kwh) * (1 + ref_gain) / reference_q_kwh) * reference_q_kwh
        )
        times = [start + timedelta(minutes=m) for m in range(minutes)]
        for m in range(minutes):
            meter_rows.append(
                {
                    "charger_id": charger_id,
                    "ts_utc": times[m],
                    "source": "ocpp",
                    "energy_register_kwh": round(float(charger_kwh[m]), 6),
                    "current_l1_a": float(current[m]),
                    "current_l2_a": float(current[m]),
                    "current_l3_a": float(current[m]),
                }
            )
            reference_rows.append(
                {
                    "meter_id": f"sub-{charger_id}",
                    "ts_utc": times[m] + timedelta(seconds=reference_lag_s),
                    "kind": "submeter",
                    "installation_id": "inst-1",
                    "charger_id": charger_id,
                    "energy_import_kwh": round(float(reference_kwh[m]), 6),
                }
            )
    utc = pl.Datetime("us", "UTC")
    chargers = pl.DataFrame(
        {"charger_id": list(gains), "installation_id": "inst-1", "max_current_a": imax_a}
    )
    return {
        "meter_values": pl.DataFrame(meter_rows).with_columns(pl.col("ts_utc").cast(utc)),
        "reference_readings": pl.DataFrame(reference_rows).with_columns(pl.col("ts_utc").cast(utc)),
        "chargers": chargers,
    }


def simulate_han_hours(gains, *, days=120, seed=3, household_noise_kwh=0.35):
    """Hourly arrays: true charger energies, their registers' view, and HAN energy.

    Each charger charges on about two evenings in three, 2-6 h at 7.4 or 11 kW, and
    sometimes at night; the household follows a daily profile with a level per day
    (weather) and independent hourly noise.

    Returns (han_kwh, charger_kwh (n, j), day labels, hour-of-day, start datetime).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    hours = days * 24
    hour_of_day = np.arange(hours) % 24
    day = np.arange(hours) // 24
    profile = (
        0.6
        + 0.5 * np.exp(-((hour_of_day - 8) ** 2) / 4)
        + 0.9 * np.exp(-((hour_of_day - 18.5) ** 2) / 6)
    )
    day_level = rng.normal(1.0, 0.25, days)[day]
    household = np.clip(profile * day_level + rng.normal(0, household_noise_kwh, hours), 0.05, None)
    true = np.zeros((hours, len(gains)))
    for j in range(len(gains)):
        for d in range(days):
            if rng.random() < 0.65:
                start = d * 24 + int(rng.integers(16, 23))
                length = int(rng.integers(2, 7))
                power = rng.choice([7.4, 11.0])
                end = min(start + length, hours)
                true[start:end, j] = power * rng.uniform(0.85, 1.0, end - start)
                # A partial first hour: charging starts at a random minute.
                true[start, j] *= rng.uniform(0.2, 1.0)
    registers = true * (1 + np.asarray(list(gains.values())))
    han = true.sum(axis=1) + household
    return han, registers, day, hour_of_day


def build_han_frames(gains, *, days=60, seed=3, installation_id="inst-han", timezone=None):
    """Store frames for :func:`simulate_han_hours`: HAN register read hourly a few seconds
    after the hour (1 Wh resolution), chargers' registers every 15 minutes (energy spread
    evenly within each hour)."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import polars as pl

    han, registers, _, _ = simulate_han_hours(gains, days=days, seed=seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)  # local days include the DST change
    han_register = 20_000.0 + np.concatenate([[0.0], np.cumsum(han)])
    han_rows = [
        {
            "meter_id": "han-1",
            "ts_utc": start + timedelta(hours=h, seconds=3),
            "kind": "han",
            "installation_id": installation_id,
            "charger_id": None,
            "energy_import_kwh": round(float(han_register[h]), 3),
        }
        for h in range(len(han_register))
    ]
    meter_rows = []
    for j, charger_id in enumerate(gains):
        register = 3000.0 + 500 * j
        for h in range(registers.shape[0]):
            for quarter in range(4):
                if h == 0 and quarter == 0:
                    meter_rows.append(
                        {
                            "charger_id": charger_id,
                            "ts_utc": start,
                            "source": "zaptec_state",
                            "energy_register_kwh": round(register, 3),
                        }
                    )
                register += registers[h, j] / 4
                meter_rows.append(
                    {
                        "charger_id": charger_id,
                        "ts_utc": start + timedelta(hours=h, minutes=15 * (quarter + 1)),
                        "source": "zaptec_state",
                        "energy_register_kwh": round(register, 3),
                    }
                )
    utc = pl.Datetime("us", "UTC")
    return {
        "reference_readings": pl.DataFrame(han_rows).with_columns(pl.col("ts_utc").cast(utc)),
        "meter_values": pl.DataFrame(meter_rows).with_columns(pl.col("ts_utc").cast(utc)),
        "chargers": pl.DataFrame(
            {"charger_id": list(gains), "installation_id": installation_id, "max_current_a": 32.0}
        ),
    }
