"""Status indicator (Z) of ZAPTEC HOME and ZapCharger Pro, as the user manuals give it.

:data:`HOME_INDICATOR_TABLE` and :data:`PRO_INDICATOR_TABLE` transcribe the English
status-indicator tables row by row -- one row per meaning, with the manual's own
wording -- plus the "No light" entry of each Troubleshooting section.
:func:`indication_for` maps every :class:`~firmware_ref.charger.ChargerState` to one
of those rows.

Reading the tables
------------------
The manuals lay the table out as a grid: colour rows (BLUE, RED, YELLOW, GREEN)
against a "Flashing" and a "Continuous" column, with PURPLE (both manuals) and WHITE
(Home) printed beside the grid. The text of the manuals comes from the printed layout,
so the grid's cells arrive in reading order, not cell by cell. Each cell was placed as
follows:

* Cells fixed by the step-by-step sections: flashing yellow "waiting for
  authentication", flashing green "authentication has been approved", flashing blue
  "charging has started"; continuous green is the Pro's idle light ("check that the
  status indicator (Z) light is green"), white the Home's ("... is white").
* Cells fixed by the Troubleshooting sections: "an error is indicated by a continuous
  red light"; "Red flashing light: Authentication failed" (Pro); "Flashing twice =
  Authentication failed" (Home).
* Each manual pairs two cells on one line of text: Pro "Autentisering OK | Klar"
  (German "Authentifizierung OK | Bereit") is the GREEN row, flashing | continuous.
  The next line, "Lading ferdig" / "Ladevorgang beendet" / "Charging complete", is a
  single continuous cell read in the same pass, the row after GREEN: YELLOW.
* The two cells printed on several lines, "Connected to (a) vehicle and ready to
  charge" and "System (is) booting up / Waiting for ... / Vehicle added to queue",
  come last, apart from their rows. The second is the flashing YELLOW cell (step
  text). For the first, the only continuous cell left is BLUE, and the Troubleshooting
  sections agree: "If the charging does not start ... Green/blue light" (Pro) and
  "White/blue light" (Home) -- the idle light, or blue when the car is connected and
  ready to charge but draws nothing -- list the checks for a plugged-in car that does
  not start.

Ambiguities, stated rather than hidden:

* No manual prints "connected, ready to charge" or "charging complete" next to its
  colour in running text; their rows rest on the reading order above and the
  Troubleshooting paragraphs. An earlier reading put "connected" on continuous yellow
  and "complete" on continuous blue; that leaves the troubleshooting "green/blue
  light" for a car that does not start without a meaning, so it was dropped.
* The Home manual's "Authentication OK (every 30 seconds indicates that the charging
  station is offline)" is one cell: the flashing green of authentication, and the same
  green blinking every 30 seconds when offline.
* Where the manuals place a colour outside the two columns (WHITE, PURPLE) the pattern
  is :attr:`Pattern.NOT_STATED` rather than a guess.

States the manuals do not cover
-------------------------------
The Pro manual has no row for an offline or a not-activated charger (the Home
manual's "every 30 seconds" blinks). The model shows its idle indication there, the
green "Ready" -- an assumption listed in :data:`ASSUMED_INDICATIONS`. The Go has no
manual here, so :func:`indication_for` refuses it.

Public API
----------
``Colour``, ``Pattern``, ``IndicatorRow(colour, pattern, meaning, section)``,
``HOME_INDICATOR_TABLE``, ``PRO_INDICATOR_TABLE``, ``INDICATOR_TABLES``,
``STATE_MEANINGS``, ``ASSUMED_INDICATIONS``, ``indication_for(product, state) -> IndicatorRow``.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from firmware_ref.charger import ChargerState, Product

__all__ = [
    "ASSUMED_INDICATIONS",
    "HOME_INDICATOR_TABLE",
    "INDICATOR_TABLES",
    "PRO_INDICATOR_TABLE",
    "STATE_MEANINGS",
    "Colour",
    "IndicatorRow",
    "Pattern",
    "indication_for",
]


class Colour(StrEnum):
    OFF = "off"
    WHITE = "white"
    GREEN = "green"
    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"
    PURPLE = "purple"


class Pattern(StrEnum):
    CONTINUOUS = "continuous"
    FLASHING = "flashing"
    FLASHING_TWICE = "flashing twice"
    FLASH_EVERY_30_S = "off, flashes every 30 seconds"
    NOT_STATED = "not stated"
    DARK = "no light"


class IndicatorRow(NamedTuple):
    colour: Colour
    pattern: Pattern
    meaning: str
    section: str


_TABLE = "Status indicators"
_TROUBLESHOOTING = "Troubleshooting"

_HOME_OFFLINE = "every 30 seconds indicates that the charging station is offline"
_HOME_ERROR = "Error (please refer to the section on Troubleshooting for further details)"
_HOME_NOT_ACTIVATED = (
    "The light is off but flashes every 30 seconds = the charging station has not been "
    "activated in ZAPTEC Portal."
)
_HOME_NO_LIGHT = "No light: The charging station is now receiving power from the installation."
_PRO_ERROR = "Error (see the Troubleshooting section for more details)"
_PRO_AUTH_FAILED = "Authentication failed (see the Troubleshooting section for more details)"
_PRO_NO_LIGHT = "No light: The charging station has no power from the installation."

HOME_INDICATOR_TABLE: tuple[IndicatorRow, ...] = (
    IndicatorRow(Colour.WHITE, Pattern.NOT_STATED, "Clear", _TABLE),
    IndicatorRow(Colour.GREEN, Pattern.FLASHING, "Authentication OK", _TABLE),
    IndicatorRow(Colour.GREEN, Pattern.FLASH_EVERY_30_S, _HOME_OFFLINE, _TABLE),
    IndicatorRow(
        Colour.BLUE, Pattern.CONTINUOUS, "Connected to vehicle and ready to charge", _TABLE
    ),
    IndicatorRow(Colour.BLUE, Pattern.FLASHING, "Charging", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.CONTINUOUS, "Charging complete", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "System booting up", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Waiting for authentication", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Waiting for ZAPTEC Portal", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Vehicle added to queue", _TABLE),
    IndicatorRow(Colour.RED, Pattern.CONTINUOUS, _HOME_ERROR, _TABLE),
    IndicatorRow(
        Colour.RED, Pattern.FLASHING_TWICE, "Flashing twice = Authentication failed", _TABLE
    ),
    IndicatorRow(Colour.RED, Pattern.FLASH_EVERY_30_S, _HOME_NOT_ACTIVATED, _TABLE),
    IndicatorRow(Colour.PURPLE, Pattern.NOT_STATED, "Firmware is updating", _TABLE),
    IndicatorRow(Colour.OFF, Pattern.DARK, _HOME_NO_LIGHT, _TROUBLESHOOTING),
)

PRO_INDICATOR_TABLE: tuple[IndicatorRow, ...] = (
    IndicatorRow(Colour.GREEN, Pattern.CONTINUOUS, "Ready", _TABLE),
    IndicatorRow(Colour.GREEN, Pattern.FLASHING, "Authentication OK", _TABLE),
    IndicatorRow(
        Colour.BLUE, Pattern.CONTINUOUS, "Connected to a vehicle and ready to charge", _TABLE
    ),
    IndicatorRow(Colour.BLUE, Pattern.FLASHING, "Charging", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.CONTINUOUS, "Charging finished", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "System is booting up", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Waiting for authentication", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Waiting for Zapcloud", _TABLE),
    IndicatorRow(Colour.YELLOW, Pattern.FLASHING, "Vehicle added to queue", _TABLE),
    IndicatorRow(Colour.RED, Pattern.CONTINUOUS, _PRO_ERROR, _TABLE),
    IndicatorRow(Colour.RED, Pattern.FLASHING, _PRO_AUTH_FAILED, _TABLE),
    IndicatorRow(Colour.PURPLE, Pattern.NOT_STATED, "Firmware is updating", _TABLE),
    IndicatorRow(Colour.OFF, Pattern.DARK, _PRO_NO_LIGHT, _TROUBLESHOOTING),
)

INDICATOR_TABLES: MappingProxyType[Product, tuple[IndicatorRow, ...]] = MappingProxyType(
    {Product.HOME: HOME_INDICATOR_TABLE, Product.PRO: PRO_INDICATOR_TABLE}
)

_S = ChargerState

STATE_MEANINGS: MappingProxyType[Product, MappingProxyType[ChargerState, str]] = MappingProxyType(
    {
        Product.HOME: MappingProxyType(
            {
                _S.UNPOWERED: _HOME_NO_LIGHT,
                _S.BOOTING: "System booting up",
                _S.NOT_ACTIVATED: _HOME_NOT_ACTIVATED,
                _S.OFFLINE: _HOME_OFFLINE,
                _S.READY: "Clear",
                _S.WAITING_FOR_AUTHENTICATION: "Waiting for authentication",
                _S.AUTHENTICATION_OK: "Authentication OK",
                _S.AUTHENTICATION_FAILED: "Flashing twice = Authentication failed",
                _S.WAITING_FOR_CLOUD: "Waiting for ZAPTEC Portal",
                _S.QUEUED: "Vehicle added to queue",
                _S.CONNECTED: "Connected to vehicle and ready to charge",
                _S.CHARGING: "Charging",
                _S.FINISHED: "Charging complete",
                _S.ERROR: _HOME_ERROR,
                _S.FIRMWARE_UPDATING: "Firmware is updating",
            }
        ),
        Product.PRO: MappingProxyType(
            {
                _S.UNPOWERED: _PRO_NO_LIGHT,
                _S.BOOTING: "System is booting up",
                _S.NOT_ACTIVATED: "Ready",
                _S.OFFLINE: "Ready",
                _S.READY: "Ready",
                _S.WAITING_FOR_AUTHENTICATION: "Waiting for authentication",
                _S.AUTHENTICATION_OK: "Authentication OK",
                _S.AUTHENTICATION_FAILED: _PRO_AUTH_FAILED,
                _S.WAITING_FOR_CLOUD: "Waiting for Zapcloud",
                _S.QUEUED: "Vehicle added to queue",
                _S.CONNECTED: "Connected to a vehicle and ready to charge",
                _S.CHARGING: "Charging",
                _S.FINISHED: "Charging finished",
                _S.ERROR: _PRO_ERROR,
                _S.FIRMWARE_UPDATING: "Firmware is updating",
            }
        ),
    }
)

ASSUMED_INDICATIONS: MappingProxyType[Product, frozenset[ChargerState]] = MappingProxyType(
    {
        Product.HOME: frozenset(),
        Product.PRO: frozenset({_S.NOT_ACTIVATED, _S.OFFLINE}),
    }
)

_ROW_BY_MEANING: dict[Product, dict[str, IndicatorRow]] = {
    product: {row.meaning: row for row in table} for product, table in INDICATOR_TABLES.items()
}


def indication_for(product: Product, state: ChargerState) -> IndicatorRow:
    """The manual's indicator row for a charger state.

    Parameters
    ----------
    product : Product
        ``Product.HOME`` or ``Product.PRO`` (the products with a manual table).
    state : ChargerState

    Returns
    -------
    IndicatorRow
        Colour, pattern, the manual's wording and the manual section it comes from.

    Raises
    ------
    KeyError
        For a product without a manual table, or a state without an indication.
    """
    if product not in _ROW_BY_MEANING:
        raise KeyError(f"no status-indicator table for {product!s}")
    return _ROW_BY_MEANING[product][STATE_MEANINGS[product][state]]
