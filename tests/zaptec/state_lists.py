"""``GET /api/chargers/{id}/state`` lists in the shapes people publish from real chargers.

Written for these tests (ids, serials and values are made up), following the shapes of
state dumps posted in public bug reports and READMEs of Zaptec clients: a flat list, one
entry per state id with the time it last changed; timestamps naive UTC with one, two or
three fraction digits; every value a string (numbers, ``"Wifi"``/``"LTE"``, a host name,
log lines with CR/LF, embedded JSON, 15- and 20-digit identifiers); ``ValueAsString``
absent for -1 Pulse and for 722 with no user; state 554 an OCMF fiscal record, from a
``ZAPTEC GO`` without a signature section (with ``"RT":"AC"``) and from a Pro MID with one.
"""

from __future__ import annotations

GO_CHARGER_ID = "7a51c0de-0000-4a11-9e00-00000000go01"
PRO_CHARGER_ID = "7a51c0de-0000-4a11-9e00-0000000pro01"
INSTALLATION_ID = "7a51c0de-0000-4a11-9e00-00000000inst"

GO_REGISTER_KWH = 2671.184
PRO_REGISTER_KWH = 4120.507

_GO_FISCAL = (
    'OCMF|{"FV":"1.0","GI":"ZAPTEC GO","GS":"ZAP041234","GV":"2.4.1.2","PG":"F1",'
    '"RD":[{"TM":"2025-03-16T16:00:00,000+00:00 R","RV":' + str(GO_REGISTER_KWH) + ","
    '"RI":"1-0:1.8.0","RU":"kWh","RT":"AC","ST":"G"}]}'
)
_PRO_FISCAL = (
    'OCMF|{"FV":"1.0","GI":"Zaptec Pro MID","GS":"ZPR204321","GV":"5.0.2.1","PG":"F1",'
    '"MF":"v1.3.6","RD":[{"TM":"2025-03-16T15:45:00,112+00:00 R","RV":'
    + str(PRO_REGISTER_KWH)
    + ',"RI":"1-0:1.8.0","RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp384r1-SHA256","SE":"base64",'
    '"SD":"MGUCMQB103iA6Jm6hW6FBOhYh5ZpG5Ddk4U+fkUHxo2ZQdvd9DBmOw7TCULz09f5huWYnv4CMFM18Ei9'
    '3r5gCubtuJs22jotfBi8U7g+L6V3zJpPJi/Bw3QYMJVTA6AVjn1Ivnll+A=="}'
)
_COMPLETED = (
    '{"SessionId":"0c7e1f3a-5b2d-4e8f-9a1b-2c3d4e5f6a7b","Energy":7.412,'
    '"StartDateTime":"2025-03-16T06:12:40.118310Z","EndDateTime":"2025-03-16T09:03:11.902117Z",'
    '"ReliableClock":true,"StoppedByRFID":false,"AuthenticationCode":"","SignedSession":""}'
)

#: (state id, timestamp, value or None when the entry has no ``ValueAsString``).
GO_STATES: list[tuple[int, str, str | None]] = [
    (-2, "2025-03-10T07:58:43.52", "1"),
    (-1, "2025-03-16T17:13:38.907", None),
    (1, "2024-05-23T16:09:28.847", "0"),
    (
        100,
        "2024-06-27T14:44:59.167",
        '{"DeviceType":"Go","SerialNumber":"ZAP041234","MeterCalibrated":false}',
    ),
    (145, "2024-05-22T19:11:55.773", "3600"),
    (150, "2024-05-23T16:10:51.387", "LTE"),
    (153, "2025-03-02T16:59:28.833", "0.106"),
    (201, "2025-03-16T17:01:06.09", "26.089"),
    (202, "2025-03-16T17:01:06.093", "16.448"),
    (270, "2025-03-16T17:01:06.093", "21.178"),
    (501, "2025-03-16T17:02:13.153", "215.570"),
    (502, "2025-03-16T17:02:13.153", "233.088"),
    (503, "2025-03-16T17:02:13.153", "230.044"),
    (507, "2025-03-16T17:03:39.223", "0.696"),
    (508, "2025-03-16T17:03:39.223", "0.028"),
    (509, "2025-03-16T17:03:39.223", "0.024"),
    (510, "2025-03-16T17:01:17.127", "0.000"),
    (511, "2024-05-22T17:51:00.76", "6.000"),
    (513, "2025-03-16T17:03:39.223", "0.000"),
    (519, "2025-03-16T11:46:14.467", "4"),
    (553, "2025-03-16T17:03:37.213", "0.234"),
    (554, "2025-03-16T16:00:00.17", _GO_FISCAL),
    (702, "2025-03-16T17:04:39.263", "9"),
    (708, "2025-03-16T17:03:23.193", "25.000"),
    (710, "2025-03-16T17:04:21.243", "2"),
    (717, "2024-06-06T11:14:48.133", "\r\n 4: VG:1.27 L12:417.65"),
    (721, "2025-03-16T15:47:32.627", "8d845c4a-7331-47c5-b308-f64f942ad17a"),
    (722, "2025-03-16T11:47:24.91", None),  # no user: the entry has no value at all
    (723, "2025-03-16T09:03:12.317", _COMPLETED),
    (801, "2024-05-22T17:51:00.773", "default"),
    (802, "2024-05-22T17:57:06.06", "zaptec-go-garasje"),
    (803, "2024-05-22T18:57:56.057", "1179648"),
    (807, "2025-03-02T16:48:48.263", "#5 BLE restart - OK"),
    (
        808,
        "2025-03-16T17:01:06.097",
        "7d 00h03m44s T_EM: 16.45 16.31 17.24  T_M: 15.42 16.28   V: 197.02 201.46 200.32   I: 2.29 0.02 0.02  0.254kW 0.000kWh C6 CM3 MCnt:487896 Rs:21 Rc:0",
    ),
    (809, "2025-03-02T16:56:09.893", "60.000"),
    (830, "2025-02-22T17:13:24.603", "[2025-02-22T17:13:24+0000] OTA             : Accepted"),
    (908, "2025-02-22T17:14:48.277", "2.4.0.0"),
    (909, "2024-12-16T13:40:52.8", "6"),
    (911, "2025-02-22T17:14:48.277", "2.4.1.2"),
    (960, "2024-05-22T19:11:57.81", "242016001464605"),
    (962, "2024-05-22T19:11:57.813", "89470060210810207713"),
]

PRO_STATES: list[tuple[int, str, str | None]] = [
    (-3, "2025-03-15T22:10:05.3", "0"),
    (-2, "2025-03-15T22:10:05.31", "1"),
    (-1, "2025-03-16T17:20:01.5", None),
    (
        100,
        "2024-11-02T09:12:40.45",
        '{"DeviceType":"Pro","SerialNumber":"ZPR204321","MeterCalibrated":true}',
    ),
    (150, "2025-03-15T22:10:04.997", "Wifi"),
    (201, "2025-03-16T17:15:00.4", "31.250"),
    (220, "2025-03-16T10:47:18.17", "40.224"),
    (270, "2025-03-16T17:15:00.41", "33.712"),
    (501, "2025-03-16T17:10:00.86", "237.418"),
    (502, "2025-03-16T17:10:00.863", "238.052"),
    (503, "2025-03-16T17:10:00.863", "238.429"),
    (507, "2025-03-16T17:16:30.84", "15.770"),
    (508, "2025-03-16T17:16:30.84", "15.838"),
    (509, "2025-03-16T17:16:30.84", "15.944"),
    (513, "2025-03-16T17:16:30.84", "11046.5986"),
    (553, "2025-03-16T17:16:29.1", "9.812"),
    (554, "2025-03-16T15:45:01.2", _PRO_FISCAL),
    (708, "2025-03-16T17:14:42.163", "16.000"),
    (710, "2025-03-16T16:02:15.64", "3"),
    (715, "2024-11-02T09:12:40.333", "4"),
    (802, "2024-11-02T09:13:00.08", "ZPR204321.local"),
    (804, "2025-03-16T12:09:48.113", "0"),
    (809, "2025-03-16T16:56:09.9", "-61.000"),
    (908, "2025-01-30T08:00:12.27", "5.0.2.1"),
    (911, "2025-01-30T08:00:12.27", "5.0.2.1"),
    (981, "2024-11-02T09:13:00.5", "3076301006072a8648ce3d020106052b81040022036200046a"),
]


def state_items(charger_id: str, states: list[tuple[int, str, str | None]]) -> list[dict]:
    """The ``/state`` list of one charger, as the cloud writes it."""
    items = []
    for state_id, stamp, value in states:
        item: dict[str, object] = {"ChargerId": charger_id, "StateId": state_id, "Timestamp": stamp}
        if value is not None:
            item["ValueAsString"] = value
        items.append(item)
    return items
