"""The Zaptec API client against the local fake: auth, paging, rate limit, retries, errors."""

from __future__ import annotations

import time

import httpx
import pytest

from zapanalytics.ingest.zaptec.api import (
    Credentials,
    RetryPolicy,
    SlidingWindowLimiter,
    ZaptecApiError,
    ZaptecAuthError,
    ZaptecClient,
    ZaptecNotFound,
)
from zapanalytics.testing.zaptec_fake import max_requests_in_window

from .conftest import PASSWORD, USERNAME


def test_login_constants_and_paging(fake, make_client, account):
    client = make_client(fake)
    constants = client.constants()
    assert constants["Observations"]["CompletedSession"] == 723
    # /api/constants needs no token: nothing was granted yet.
    assert fake.tokens_granted == 0

    pages = list(client.iter_pages("/api/chargers", {"InstallationId": None}, page_size=2))
    assert [p.index for p in pages] == [0, 1]
    assert all(p.pages == 2 for p in pages)
    ids = [c["Id"] for p in pages for c in p.items]
    assert ids == [c["Id"] for c in account.chargers]
    assert fake.tokens_granted == 1
    sent = fake.requests("/api/chargers")
    assert [(r.query["pageindex"], r.query["pagesize"]) for r in sent] == [("0", "2"), ("1", "2")]


def test_fake_pages_like_zaptec(fake, make_client):
    """Default PageSize 50, at most 100, 0-based PageIndex, case-insensitive query keys."""
    client = make_client(fake)
    client.login()
    token = client._token  # the test needs a raw request with hand-written query keys
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=fake.base_url, headers=headers) as http:
        default = http.get("/api/chargehistory").json()
        assert len(default["Data"]) == 50
        lower = http.get("/api/chargehistory", params={"pagesize": 7, "pageindex": 1}).json()
        upper = http.get("/api/chargehistory", params={"PageSize": 7, "PAGEINDEX": 1}).json()
        assert lower == upper and len(lower["Data"]) == 7
        assert lower["Data"][0]["Id"] == default["Data"][7]["Id"]
        too_big = http.get("/api/chargehistory", params={"PageSize": 101})
        assert too_big.status_code == 400
        beyond = http.get("/api/chargehistory", params={"PageSize": 100, "PageIndex": 999}).json()
        assert beyond["Data"] == [] and beyond["Pages"] >= 1
        summary = http.get("/api/chargehistory", params={"PageSize": 1}).json()["Data"][0]
        assert "EnergyDetails" not in summary
        detailed = http.get("/api/chargehistory", params={"PageSize": 1, "DetailLevel": 1})
        assert detailed.json()["Data"][0]["EnergyDetails"][0]["Energy"] == 0.0


def test_client_refuses_page_size_above_100(fake, make_client):
    client = make_client(fake)
    with pytest.raises(ValueError, match="page_size"):
        client.charge_history_page(0, page_size=101)


def test_wrong_password_is_a_one_line_auth_error(fake, make_client):
    client = make_client(fake, password="wrong-password-123")
    with pytest.raises(ZaptecAuthError) as caught:
        client.installations()
    message = str(caught.value)
    assert "invalid_grant" in message and "\n" not in message
    assert "wrong-password-123" not in message and "wrong-password-123" not in repr(caught.value)
    # A refused grant is not retried: one POST.
    assert len(fake.requests("/oauth/token")) == 1


def test_expired_token_triggers_exactly_one_relogin(fake, make_client):
    client = make_client(fake)
    client.installations()
    assert fake.tokens_granted == 1
    fake.expire_tokens()
    installations = client.installations()
    assert installations
    statuses = [(r.path, r.status) for r in fake.log if r.path != "/api/constants"]
    assert statuses[-3:] == [
        ("/api/installation", 401),
        ("/oauth/token", 200),
        ("/api/installation", 200),
    ]
    assert fake.tokens_granted == 2 and client.logins == 2


def test_persistent_401_gives_up_after_one_relogin(fake, make_client):
    client = make_client(fake)
    fake.inject("/api/chargers", 401, times=None)
    with pytest.raises(ZaptecAuthError, match="fresh login did not help"):
        client.chargers()
    assert fake.tokens_granted == 2
    assert [r.status for r in fake.requests("/api/chargers")] == [401, 401]


def test_token_renewed_before_it_expires(fake, make_client):
    now = [1000.0]
    fake.token_lifetime_s = 600  # expires_in 600 s: renewed 60 s early
    client = make_client(fake, clock=lambda: now[0])
    client.installations()
    now[0] += 530
    client.installations()
    assert client.logins == 1
    now[0] += 20  # 550 s: inside the renewal margin
    client.installations()
    assert client.logins == 2
    assert all(r.status != 401 for r in fake.log)


def test_429_is_retried_after_retry_after(start_fake, account, make_client):
    fake = start_fake(account, rate_limit=3)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    client = make_client(fake, sleep=sleep)
    for _ in range(6):
        assert client.constants()["Observations"]
    statuses = [r.status for r in fake.log]
    assert 429 in statuses
    assert statuses.count(200) == 6
    assert waits and all(w == 1.0 for w in waits)  # the fake's Retry-After: 1


def test_client_never_exceeds_ten_requests_in_any_second(start_fake, account):
    fake = start_fake(account)  # the fake enforces Zaptec's 10/s with 429
    with ZaptecClient(USERNAME, PASSWORD, base_url=fake.base_url) as client:
        for _ in range(24):
            client.constants()
    assert len(fake.log) == 24
    assert fake.max_requests_per_second() <= 10
    assert all(r.status == 200 for r in fake.log)
    assert fake.log[-1].t_s - fake.log[0].t_s >= 2.0  # 24 requests need more than two seconds


def test_sliding_window_limiter_bounds_every_window():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = SlidingWindowLimiter(10, 1.0, margin_s=0.0, clock=lambda: now[0], sleep=sleep)
    stamps = []
    for n in range(55):
        slot = limiter.acquire()
        stamps.append(now[0])
        now[0] += 0.013 * (n % 3)  # the response takes a while
        limiter.release(slot)
    assert max_requests_in_window(stamps) == 10
    # The 11th request waits a full second after the first one's response.
    assert stamps[10] - stamps[0] >= 1.0


@pytest.mark.parametrize("status", [502, 503, 504, 500])
def test_transient_errors_on_get_are_retried(fake, make_client, status):
    client = make_client(fake)
    fake.inject("/api/installation", status, times=2)
    assert client.installations()
    assert [r.status for r in fake.requests("/api/installation")] == [status, status, 200]


def test_500_on_post_is_not_retried_but_503_is(fake, make_client, account):
    import datetime as dt

    client = make_client(fake)
    installation_id = next(iter(account.installations))
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    end = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    fake.inject("/api/chargehistory/installationreport", 500, times=1)
    with pytest.raises(ZaptecApiError) as caught:
        client.installation_report(installation_id, start, end)
    assert caught.value.status == 500 and caught.value.attempts == 1
    fake.inject("/api/chargehistory/installationreport", 503, times=1)
    assert client.installation_report(installation_id, start, end)["totalUserChargerReportModel"]


def test_retry_budget_spent_gives_a_clear_error(fake, make_client):
    client = make_client(fake, retry=RetryPolicy(max_retries=2, backoff_base_s=0.01))
    fake.inject("/api/installation", 503, times=None, body='{"message":"Service Unavailable"}')
    with pytest.raises(ZaptecApiError) as caught:
        client.installations()
    error = caught.value
    assert error.status == 503 and error.attempts == 3
    assert str(error) == (
        "Zaptec API GET /api/installation: HTTP 503: Service Unavailable after 3 attempts"
    )
    assert len(fake.requests("/api/installation")) == 3


def test_unknown_charger_state_is_404_errorcode_512(fake, make_client):
    client = make_client(fake)
    with pytest.raises(ZaptecNotFound) as caught:
        client.charger_state("00000000-0000-4000-8000-000000000000")
    assert caught.value.error_code == 512 and caught.value.status == 404
    assert "Charger not found." in str(caught.value)


def test_state_values_are_strings_and_pulse_has_none(fake, make_client, account):
    client = make_client(fake)
    state = client.charger_state(account.chargers[0]["Id"])
    by_id = {item["StateId"]: item for item in state}
    assert "ValueAsString" not in by_id[-1]
    assert all(isinstance(item["ValueAsString"], str) for item in state if item["StateId"] != -1)
    assert float(by_id[501]["ValueAsString"]) > 200


def test_hierarchy_and_details(fake, make_client, account):
    client = make_client(fake)
    installation_id = next(iter(account.installations))
    hierarchy = client.installation_hierarchy(installation_id)
    in_circuits = {c["Id"] for circuit in hierarchy["Circuits"] for c in circuit["Chargers"]}
    assert in_circuits == {c["Id"] for c in account.chargers if c.get("CircuitId")}
    assert client.installation(installation_id)["TimeZoneIanaName"] == "Europe/Oslo"
    assert client.charger(account.chargers[1]["Id"])["DeviceId"] == account.chargers[1]["DeviceId"]
    fake.inject(f"/api/installation/{installation_id}/hierarchy", 204)
    assert client.installation_hierarchy(installation_id) is None


def test_credentials_never_shown():
    credentials = Credentials("someone@example.com", "s3cret-Passw0rd")
    assert "s3cret" not in repr(credentials) and "s3cret" not in str(credentials)
    client = ZaptecClient("someone@example.com", "s3cret-Passw0rd", base_url="http://127.0.0.1:9")
    try:
        assert "s3cret" not in repr(client)
    finally:
        client.close()


def test_unreachable_server_is_a_clear_error():
    client = ZaptecClient(
        "u",
        "p",
        base_url="http://127.0.0.1:9",
        retry=RetryPolicy(max_retries=1, backoff_base_s=0.01),
    )
    try:
        with pytest.raises(ZaptecApiError, match="ConnectError after 2 attempt"):
            client.constants()
    finally:
        client.close()


def test_limiter_counts_requests_still_in_flight():
    """Ten slow requests in flight: the eleventh waits for a response, then one more period."""
    import threading

    limiter = SlidingWindowLimiter(10, 0.2, margin_s=0.0)
    slots = [limiter.acquire() for _ in range(10)]
    started = []

    def eleventh() -> None:
        limiter.release(limiter.acquire())
        started.append(time.monotonic())

    thread = threading.Thread(target=eleventh)
    thread.start()
    time.sleep(0.3)  # longer than the period: only the open requests hold it back
    assert not started
    released = time.monotonic()
    limiter.release(slots[0])
    thread.join(2)
    assert started and started[0] - released >= 0.2


def test_token_endpoint_503_is_retried(fake, make_client):
    """Zaptec's token endpoint has answered nginx 503 without Retry-After while overloaded."""
    fake.inject("/oauth/token", 503, times=2, body="<html>503 Service Temporarily Unavailable</html>")
    client = make_client(fake)
    assert client.installations()
    assert [r.status for r in fake.requests("/oauth/token")] == [503, 503, 200]
    assert client.logins == 1
