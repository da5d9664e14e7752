"""Billing: split the installation's electricity cost between its users.

* :mod:`~zapanalytics.billing.rates` — dated, sourced rate tables (TOML), customer types, the site;
* :mod:`~zapanalytics.billing.energy` — energy per user per quarter-hour from the store rows;
* :mod:`~zapanalytics.billing.tariff` — the rate calendar and the capacity charge;
* :mod:`~zapanalytics.billing.split` — the ``flat``, ``spot`` and ``full`` methods;
* :mod:`~zapanalytics.billing.reconcile` — allocated against invoiced, and the residual;
* :mod:`~zapanalytics.billing.monthly` — one month of one installation, from frames or the store;
* :mod:`~zapanalytics.billing.provenance` — each line's rate: valid-from date, source, status;
* :mod:`~zapanalytics.billing.statements` — statement documents (data), CSV/XLSX, issuing.

HTML, PDF and e-mail of the statements are :mod:`zapanalytics.report`'s
(``statements_html``, ``statements_pdf``, ``statements_files``, ``statements_mail``).
"""

from zapanalytics.billing.energy import month_bounds, user_interval_energy
from zapanalytics.billing.flat import flat_split
from zapanalytics.billing.monthly import Bill, BillingError, bill_month
from zapanalytics.billing.rates import RateTableError, Site, load_rates
from zapanalytics.billing.reconcile import InvoiceError, read_invoices, reconcile
from zapanalytics.billing.split import METHODS, MissingPricesError, Split
from zapanalytics.billing.tariff import interval_calendar

__all__ = [
    "METHODS",
    "Bill",
    "BillingError",
    "InvoiceError",
    "MissingPricesError",
    "RateTableError",
    "Site",
    "Split",
    "bill_month",
    "flat_split",
    "interval_calendar",
    "load_rates",
    "month_bounds",
    "read_invoices",
    "reconcile",
    "user_interval_energy",
]
