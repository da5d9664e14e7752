"""Fixtures for the Zaptec client, sync, fake and portal tests: a synthetic account served
by the local fake over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from zapanalytics.ingest.zaptec.api import RetryPolicy, ZaptecClient
from zapanalytics.store import open_store
from zapanalytics.testing.zaptec_fake import FakeData, ZaptecFake
from zapanalytics.testing.zaptec_synthetic import synthetic_account

USERNAME = "owner@example.com"
PASSWORD = "correct horse battery staple"
#: The synthetic history runs 20 days from 1 March 2025; "now" of a complete sync.
HISTORY_START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
#: Retries that do not slow the tests down (Retry-After is still honoured).
FAST_RETRY = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_factor=2.0, jitter=0.0)


def make_account(**kwargs) -> FakeData:
    options = dict(
        chargers=3,
        days=20,
        start=HISTORY_START,
        offline_fraction=0.08,
        void_fraction=0.05,
        mismatch_fraction=0.05,
        seed=11,
    )
    options.update(kwargs)
    return synthetic_account(**options)


@pytest.fixture
def account() -> FakeData:
    return make_account()


@pytest.fixture
def start_fake() -> Iterator[Callable[..., ZaptecFake]]:
    """Start fakes (stopped after the test): ``start_fake(data, **options)``."""
    running: list[ZaptecFake] = []

    def start(data: FakeData, **options) -> ZaptecFake:
        options.setdefault("username", USERNAME)
        options.setdefault("password", PASSWORD)
        fake = ZaptecFake(data, **options).start()
        running.append(fake)
        return fake

    yield start
    for fake in running:
        fake.stop()


@pytest.fixture
def fake(start_fake, account) -> ZaptecFake:
    """The account served without a rate limit, so tests that are not about it stay fast."""
    return start_fake(account, rate_limit=None)


@pytest.fixture
def make_client() -> Iterator[Callable[..., ZaptecClient]]:
    """Clients for a fake (closed after the test): fast retries, no client-side limit."""
    clients: list[ZaptecClient] = []

    def make(fake: ZaptecFake, **options) -> ZaptecClient:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("requests_per_second", 1000)
        username = options.pop("username", USERNAME)
        password = options.pop("password", PASSWORD)
        client = ZaptecClient(username, password, base_url=fake.base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def store_factory(tmp_path):
    """Open fresh store files: ``store_factory("name")``."""
    opened = []

    def make(name: str = "zap"):
        con = open_store(tmp_path / f"{name}.duckdb")
        opened.append(con)
        return con

    yield make
    for con in opened:
        con.close()
