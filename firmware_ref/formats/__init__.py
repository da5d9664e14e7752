"""Writers of the real source formats, each a pure "simulation result -> files" function.

:func:`write_dataset` writes everything a dataset directory holds:

=========================  =====================================================
``zaptec/``                Zaptec API dump (:mod:`.zaptec_api`)
``ocpp/``                  OCPP 1.6J message logs (:mod:`.ocpp_log`)
``han/``                   AMS/HAN HDLC frames of the main meter (:mod:`.han`)
``submeter/``              MID sub-meter CSV files (:mod:`.submeter`)
``prices/``                spot prices, hvakosterstrommen.no shape (:mod:`.prices`)
``keys/``                  OCMF public keys (:mod:`.truth`)
``ground_truth.json``,     injected faults, true energies, gain errors,
``ground_truth/``          allocations and line currents (:mod:`.truth`)
=========================  =====================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from firmware_ref.formats.han import write_han
from firmware_ref.formats.ocpp_log import ZAPTEC_DEFAULT_SAMPLE_INTERVAL_S, write_ocpp_logs
from firmware_ref.formats.prices import write_prices
from firmware_ref.formats.submeter import write_submeters
from firmware_ref.formats.truth import write_ground_truth, write_keys
from firmware_ref.formats.zaptec_api import write_zaptec_api

__all__ = [
    "FormatOptions",
    "write_dataset",
    "write_ground_truth",
    "write_han",
    "write_keys",
    "write_ocpp_logs",
    "write_prices",
    "write_submeters",
    "write_zaptec_api",
]


@dataclass(frozen=True)
class FormatOptions:
    """How :func:`write_dataset` writes a result.

    Parameters
    ----------
    page_size : int
        Charge-history page size (API maximum 100).
    ocpp_charge_points : tuple of int, optional
        Indices of the chargers with an OCPP log; default all.
    ocpp_meter_value_interval_s : float
        ``MeterValueSampleInterval`` of the OCPP logs [s] (Zaptec default 120).
    han_vendor : {'kaifa', 'aidon'}
        HDLC frame layout of the AMS meter.
    han_list2_interval_s : float, optional
        Interval of List 2 frames [s]; default every reading of the simulation.
    price_areas : tuple of str, optional
        Price areas to write; default the installation's.
    """

    page_size: int = 100
    ocpp_charge_points: tuple[int, ...] | None = None
    ocpp_meter_value_interval_s: float = ZAPTEC_DEFAULT_SAMPLE_INTERVAL_S
    han_vendor: str = "kaifa"
    han_list2_interval_s: float | None = None
    price_areas: tuple[str, ...] | None = None


def write_dataset(result, out_dir: Path | str, options: FormatOptions | None = None) -> list[Path]:
    """Write a simulated installation in every source format.

    Parameters
    ----------
    result : SimulationResult
        Simulation output.
    out_dir : pathlib.Path or str
        Dataset root (created if needed). Files this function writes are replaced;
        other files in the directory are left alone.
    options : FormatOptions, optional
        Writer settings.

    Returns
    -------
    list of pathlib.Path
        Files written, in writing order.
    """
    options = options or FormatOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = write_zaptec_api(result, out, page_size=options.page_size)
    charge_points = None
    if options.ocpp_charge_points is not None:
        devices = result.chargers["device_id"].to_list()
        charge_points = tuple(devices[i] for i in options.ocpp_charge_points)
    ocpp_files, lost = write_ocpp_logs(
        result, out, charge_points, options.ocpp_meter_value_interval_s
    )
    written += ocpp_files
    written += write_han(result, out, options.han_vendor, options.han_list2_interval_s)
    written += write_submeters(result, out)
    config = result.config
    last_day = config.start + timedelta(days=config.days - 1)
    for area in options.price_areas or (config.price_area,):
        written += write_prices(out, area, config.start, last_day, result.seed, config.timezone)
    written += write_keys(result, out)
    written += write_ground_truth(result, out, lost, formats=asdict(options))
    return written
