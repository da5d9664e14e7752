"""Status indicator: every row of both manuals' tables, tied to reachable states."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from firmware_ref.charger import HOME, PRO, AuthMode, Charger, ChargerState, Product
from firmware_ref.indicator import (
    ASSUMED_INDICATIONS,
    HOME_INDICATOR_TABLE,
    INDICATOR_TABLES,
    PRO_INDICATOR_TABLE,
    STATE_MEANINGS,
    Colour,
    IndicatorRow,
    Pattern,
    indication_for,
)

S = ChargerState
SEEDS_DIR = Path("/work/shared/seeds")
MANUAL_FILES = {Product.HOME: "000_*.txt", Product.PRO: "001_*.txt"}
ALL_ROWS = [(Product.HOME, row) for row in HOME_INDICATOR_TABLE] + [
    (Product.PRO, row) for row in PRO_INDICATOR_TABLE
]
ROW_IDS = [f"{product}-{row.colour}-{row.pattern}-{row.meaning[:28]}" for product, row in ALL_ROWS]


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("•", " ")).strip()


def reachable_states(model, seed: int, steps: int = 4000) -> set[ChargerState]:
    """States visited by a seeded random walk over every event the charger accepts."""
    rng = random.Random(seed)
    visited: set[ChargerState] = set()
    for auth_mode in AuthMode:
        t = 0.0
        charger = Charger(
            model, "X", t_s=t, auth_mode=auth_mode, allow_list=["ok"], state=S.UNPOWERED
        )
        visited.add(charger.state)
        for _ in range(steps):
            t += rng.choice((0.5, 2.0, 10.0, 60.0, 400.0))
            event = rng.randrange(15)
            if event == 0:
                state = charger.power_on(t)
            elif event == 1 and rng.random() < 0.2:
                state = charger.power_loss(t)
            elif event == 2:
                state = charger.connect_car(t, requesting=rng.random() < 0.7)
            elif event == 3:
                state = charger.disconnect_car(t)
            elif event == 4 and charger.car_connected:
                state = charger.ev_requests_energy(t, rng.random() < 0.6)
            elif event == 5:
                state = charger.present_rfid(t, rng.choice(("ok", "unknown")))
            elif event == 6:
                state = charger.cloud_authorization(t, rng.random() < 0.7)
            elif event == 7:
                state = charger.set_allocation(t, rng.choice((0.0, 4.0, 6.0, 16.0, 32.0)))
            elif event == 8:
                state = charger.set_online(t, rng.random() < 0.7)
            elif event == 9 and rng.random() < 0.2:
                state = charger.set_activated(t, rng.random() < 0.6)
            elif event == 10:
                state = charger.set_temperature(t, rng.uniform(20.0, 85.0))
            elif event == 11:
                window = (t + rng.uniform(0, 3600), t + rng.uniform(3600, 7200))
                state = charger.set_eco_windows(t, rng.choice((None, [window])))
            elif event == 12:
                state = charger.start_firmware_update(t, 120.0)
            elif event == 13 and rng.random() < 0.2:
                state = charger.fault(t, persistent=rng.random() < 0.3)
            elif event == 14:
                state = charger.clear_fault(t)
            else:
                state = charger.advance(t)
            visited.add(state)
    return visited


@pytest.fixture(scope="module", params=[Product.HOME, Product.PRO])
def reached(request):
    model = {Product.HOME: HOME, Product.PRO: PRO}[request.param]
    return request.param, reachable_states(model, seed=61851)


@pytest.mark.parametrize(("product", "row"), ALL_ROWS, ids=ROW_IDS)
def test_row_is_well_formed_and_quotes_the_manual(product, row):
    assert isinstance(row, IndicatorRow)
    assert isinstance(row.colour, Colour) and isinstance(row.pattern, Pattern)
    assert row.section in {"Status indicators", "Troubleshooting"}
    assert (row.colour is Colour.OFF) == (row.pattern is Pattern.DARK)
    manuals = sorted(SEEDS_DIR.glob(MANUAL_FILES[product]))
    if not manuals:
        pytest.skip("product manuals not available on this machine")
    manual = _normalised(manuals[0].read_text(encoding="utf-8"))
    assert _normalised(row.meaning) in manual


@pytest.mark.parametrize(("product", "row"), ALL_ROWS, ids=ROW_IDS)
def test_row_is_shown_by_some_state(product, row):
    showing = [s for s in ChargerState if indication_for(product, s) == row]
    assert showing, f"no state shows {row}"


def test_every_reachable_state_has_a_row_of_its_manual(reached):
    product, states = reached
    assert states == set(ChargerState), f"unreached: {set(ChargerState) - states}"
    table = INDICATOR_TABLES[product]
    for state in states:
        assert indication_for(product, state) in table


def test_every_row_is_shown_by_a_reachable_state(reached):
    product, states = reached
    shown = {indication_for(product, state) for state in states}
    assert shown == set(INDICATOR_TABLES[product])


def test_meanings_are_unique_per_table():
    for table in INDICATOR_TABLES.values():
        meanings = [row.meaning for row in table]
        assert len(meanings) == len(set(meanings))
    assert set(STATE_MEANINGS) == set(INDICATOR_TABLES)


@pytest.mark.parametrize(
    ("product", "state", "colour", "pattern"),
    [
        (Product.HOME, S.READY, Colour.WHITE, Pattern.NOT_STATED),
        (Product.PRO, S.READY, Colour.GREEN, Pattern.CONTINUOUS),
        (Product.HOME, S.CHARGING, Colour.BLUE, Pattern.FLASHING),
        (Product.PRO, S.CHARGING, Colour.BLUE, Pattern.FLASHING),
        # Charging complete: continuous yellow; connected and ready: continuous blue (the
        # manuals' "green/blue" and "white/blue light" troubleshooting for a car that
        # does not start). See the module docstring for the reading.
        (Product.HOME, S.FINISHED, Colour.YELLOW, Pattern.CONTINUOUS),
        (Product.PRO, S.FINISHED, Colour.YELLOW, Pattern.CONTINUOUS),
        (Product.HOME, S.CONNECTED, Colour.BLUE, Pattern.CONTINUOUS),
        (Product.HOME, S.QUEUED, Colour.YELLOW, Pattern.FLASHING),
        (Product.PRO, S.WAITING_FOR_CLOUD, Colour.YELLOW, Pattern.FLASHING),
        (Product.PRO, S.BOOTING, Colour.YELLOW, Pattern.FLASHING),
        (Product.HOME, S.WAITING_FOR_AUTHENTICATION, Colour.YELLOW, Pattern.FLASHING),
        (Product.PRO, S.CONNECTED, Colour.BLUE, Pattern.CONTINUOUS),
        (Product.HOME, S.AUTHENTICATION_OK, Colour.GREEN, Pattern.FLASHING),
        (Product.HOME, S.ERROR, Colour.RED, Pattern.CONTINUOUS),
        (Product.PRO, S.ERROR, Colour.RED, Pattern.CONTINUOUS),
        (Product.HOME, S.AUTHENTICATION_FAILED, Colour.RED, Pattern.FLASHING_TWICE),
        (Product.PRO, S.AUTHENTICATION_FAILED, Colour.RED, Pattern.FLASHING),
        (Product.HOME, S.FIRMWARE_UPDATING, Colour.PURPLE, Pattern.NOT_STATED),
        (Product.PRO, S.FIRMWARE_UPDATING, Colour.PURPLE, Pattern.NOT_STATED),
        (Product.HOME, S.OFFLINE, Colour.GREEN, Pattern.FLASH_EVERY_30_S),
        (Product.HOME, S.NOT_ACTIVATED, Colour.RED, Pattern.FLASH_EVERY_30_S),
        (Product.HOME, S.UNPOWERED, Colour.OFF, Pattern.DARK),
    ],
)
def test_headline_indications(product, state, colour, pattern):
    row = indication_for(product, state)
    assert (row.colour, row.pattern) == (colour, pattern)


def test_assumed_indications_are_only_where_the_manual_is_silent():
    assert ASSUMED_INDICATIONS[Product.HOME] == frozenset()
    for state in ASSUMED_INDICATIONS[Product.PRO]:
        assert indication_for(Product.PRO, state).meaning == "Ready"
    home_only = {indication_for(Product.HOME, s).pattern for s in ASSUMED_INDICATIONS[Product.PRO]}
    assert home_only == {Pattern.FLASH_EVERY_30_S}


def test_go_has_no_manual_table():
    with pytest.raises(KeyError):
        indication_for(Product.GO, S.READY)
