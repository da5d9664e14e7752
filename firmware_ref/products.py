"""What a Zaptec charger is: products and their constants, charger states, and how a state
maps to Zaptec's operation mode (StateId 710) and to OCPP 1.6 status.

The state machine that moves between these states is :mod:`firmware_ref.charger`; the
status indicator for each state is :mod:`firmware_ref.indicator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from firmware_ref.pilot import MIN_CHARGING_CURRENT_A


class Product(StrEnum):
    HOME = "home"
    PRO = "pro"
    GO = "go"


@dataclass(frozen=True, slots=True)
class ChargerModel:
    """Model-specific constants. Figures from the manuals unless noted.

    Attributes
    ----------
    product : Product
    name : str
        Product name as printed in the manual.
    boot_time_min_s, boot_time_max_s : float
        Start-up time after power-up [s] (Home 1-2 min, Pro 2-3 min).
    max_current_a : float
        Rated current per phase [A] (32 A; 7.36 kW 1-phase, 22 kW 3-phase on TN).
    max_installation_fuse_a : float
        Largest fuse in front of the installation circuit [A] (Home manual: "Max. 40 A
        series connected fuse in the charging station installation circuit"; Pro manual:
        "Max 63A connected fuse on installation circuit"; Go: no manual here, Home's).
    max_chargers_per_installation : int
        Home: 3 ("Max. 3 x ZAPTEC HOME connected in one installation"). Pro: 100 (German
        edition: up to 100 EVs on 63 A). Go: no manual here, Home's.
    :func:`check_product_limits` enforces these three limits.
    serial_prefix : str
        Serial number prefix (manuals: ZCH123456 Home, ZCS123456 Pro).
    ocmf_gateway_id, firmware_version, meter_firmware : str
        OCMF ``GI``/``GV``/``MF``; Pro and Go values seen in real records, Home assumed.
    periodic_meter_interval_s : float
        Interval of signed register records [s] (Pro 900, Go 3600, Home assumed 3600).
    soft_start_s, soft_start_current_a : float
        Soft-start duration [s] and current cap [A] (assumption, see module notes).
    """

    product: Product
    name: str
    boot_time_min_s: float
    boot_time_max_s: float
    max_current_a: float
    max_installation_fuse_a: float
    max_chargers_per_installation: int
    serial_prefix: str
    ocmf_gateway_id: str
    firmware_version: str
    meter_firmware: str
    periodic_meter_interval_s: float
    soft_start_s: float = 30.0
    soft_start_current_a: float = MIN_CHARGING_CURRENT_A

    @property
    def boot_time_s(self) -> float:
        """Middle of the manual's boot-time range [s]."""
        return 0.5 * (self.boot_time_min_s + self.boot_time_max_s)


HOME = ChargerModel(
    product=Product.HOME,
    name="ZAPTEC HOME",
    boot_time_min_s=60.0,
    boot_time_max_s=120.0,
    max_current_a=32.0,
    max_installation_fuse_a=40.0,
    max_chargers_per_installation=3,
    serial_prefix="ZCH",
    ocmf_gateway_id="ZAPTEC HOME",
    firmware_version="1.9.0.0",
    meter_firmware="v1.3.6",
    periodic_meter_interval_s=3600.0,
)
PRO = ChargerModel(
    product=Product.PRO,
    name="ZapCharger Pro",
    boot_time_min_s=120.0,
    boot_time_max_s=180.0,
    max_current_a=32.0,
    max_installation_fuse_a=63.0,
    max_chargers_per_installation=100,
    serial_prefix="ZCS",
    ocmf_gateway_id="Zaptec Pro MID",
    firmware_version="5.0.2.1",
    meter_firmware="v1.3.6",
    periodic_meter_interval_s=900.0,
)
GO = ChargerModel(
    product=Product.GO,
    name="Zaptec Go",
    boot_time_min_s=60.0,
    boot_time_max_s=120.0,
    max_current_a=32.0,
    max_installation_fuse_a=40.0,
    max_chargers_per_installation=3,
    serial_prefix="ZAP",
    ocmf_gateway_id="ZAPTEC GO",
    firmware_version="2.3.1.2",
    meter_firmware="v1.3.6",
    periodic_meter_interval_s=3600.0,
)
MODELS: dict[Product, ChargerModel] = {Product.HOME: HOME, Product.PRO: PRO, Product.GO: GO}

#: The highest current any of the products is rated for, per phase [A] (every manual:
#: "7.36 kW at 32 A 1-phase, 22 kW at 32 A 3-phase"); the allocator never offers more.
RATED_CURRENT_A = max(model.max_current_a for model in MODELS.values())


class ProductLimitError(ValueError):
    """A configuration outside what the product's manual allows."""


def check_product_limits(
    model: ChargerModel,
    *,
    chargers: int,
    installation_fuse_a: float,
    charger_max_current_a: float,
) -> None:
    """Refuse an installation the product's manual does not allow.

    Parameters
    ----------
    model : ChargerModel
    chargers : int
        Chargers of this product in the installation.
    installation_fuse_a : float
        Fuse in front of the charging installation's circuit [A].
    charger_max_current_a : float
        The chargers' maximum charge current per phase [A].

    Raises
    ------
    ProductLimitError
        Naming the limit and the manual's wording, e.g. for a ZAPTEC HOME site with four
        chargers: "Max. 3 x ZAPTEC HOME connected in one installation".
    """
    if chargers > model.max_chargers_per_installation:
        raise ProductLimitError(
            f"{model.name}: {chargers} chargers in one installation; the manual allows at "
            f"most {model.max_chargers_per_installation}"
        )
    if installation_fuse_a > model.max_installation_fuse_a:
        raise ProductLimitError(
            f"{model.name}: a {installation_fuse_a:g} A fuse in front of the installation "
            f"circuit; the manual allows at most {model.max_installation_fuse_a:g} A"
        )
    if charger_max_current_a > model.max_current_a:
        raise ProductLimitError(
            f"{model.name}: a charge current of {charger_max_current_a:g} A; the charger is "
            f"rated for at most {model.max_current_a:g} A per phase"
        )


class ChargerState(StrEnum):
    UNPOWERED = "unpowered"
    BOOTING = "booting"
    NOT_ACTIVATED = "not_activated"
    OFFLINE = "offline"
    READY = "ready"
    WAITING_FOR_AUTHENTICATION = "waiting_for_authentication"
    AUTHENTICATION_OK = "authentication_ok"
    AUTHENTICATION_FAILED = "authentication_failed"
    WAITING_FOR_CLOUD = "waiting_for_cloud"
    QUEUED = "queued"
    CONNECTED = "connected"
    CHARGING = "charging"
    FINISHED = "finished"
    ERROR = "error"
    FIRMWARE_UPDATING = "firmware_updating"


class OperationMode(IntEnum):
    """Zaptec ``ChargerOperationMode`` (StateId 710)."""

    UNKNOWN = 0
    DISCONNECTED = 1
    CONNECTED_REQUESTING = 2
    CONNECTED_CHARGING = 3
    CONNECTED_FINISHED = 5


class AuthMode(StrEnum):
    NONE = "none"
    RFID = "rfid"
    CLOUD = "cloud"


_IDLE_STATES = frozenset({ChargerState.READY, ChargerState.OFFLINE, ChargerState.NOT_ACTIVATED})
_AUTHORISED_SESSION_STATES = frozenset(
    {ChargerState.QUEUED, ChargerState.CONNECTED, ChargerState.CHARGING, ChargerState.FINISHED}
)
_PREPARING_STATES = frozenset(
    {
        ChargerState.WAITING_FOR_AUTHENTICATION,
        ChargerState.AUTHENTICATION_OK,
        ChargerState.AUTHENTICATION_FAILED,
        ChargerState.WAITING_FOR_CLOUD,
        ChargerState.CONNECTED,
    }
)


def operation_mode_for(state: ChargerState, car_connected: bool) -> OperationMode:
    """Zaptec operation mode (710) for a charger state.

    CHARGING -> 3 Connected_Charging, FINISHED -> 5 Connected_Finished; any other
    state is 2 Connected_Requesting with a car plugged in and 1 Disconnected without.
    """
    if state is ChargerState.CHARGING:
        return OperationMode.CONNECTED_CHARGING
    if state is ChargerState.FINISHED:
        return OperationMode.CONNECTED_FINISHED
    if car_connected:
        return OperationMode.CONNECTED_REQUESTING
    return OperationMode.DISCONNECTED


def ocpp_status_for(state: ChargerState, has_charged: bool = False) -> str:
    """OCPP 1.6 ``StatusNotification`` status for a charger state.

    QUEUED is ``SuspendedEVSE`` once energy has flowed in the session and
    ``Preparing`` before; FINISHED is ``SuspendedEV`` (the car stopped drawing).
    """
    if state in _IDLE_STATES:
        return "Available"
    if state is ChargerState.CHARGING:
        return "Charging"
    if state is ChargerState.FINISHED:
        return "SuspendedEV"
    if state is ChargerState.QUEUED:
        return "SuspendedEVSE" if has_charged else "Preparing"
    if state in _PREPARING_STATES:
        return "Preparing"
    if state is ChargerState.ERROR:
        return "Faulted"
    return "Unavailable"
