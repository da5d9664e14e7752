"""Records that hold one reading: published begin-only and end-only records, and a fiscal
record. Their signatures are valid, so ``audit ocmf`` exits 0; the begin/end check is
reported and marked not applicable (its partner is another record)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import (
    ZAPTEC_FISCAL_PAYLOAD,
    ZAPTEC_SESSION_PAYLOAD,
    key_forms,
    private_key,
    sign,
)
from typer.testing import CliRunner

from zapanalytics.audit.ocmf import verify
from zapanalytics.cli import app

PUBLISHED = Path(__file__).parent / "fixtures" / "ocmf_published"
runner = CliRunner()

CASES = {
    "dzg-begin": ("dzg_dvh4013_begin.ocmf", "dzg_dvh4013_key.b64"),
    "nzr-begin": ("nzr_ecocount_begin.ocmf", "nzr_ecocount_key.hex"),
    "nzr-end": ("nzr_ecocount_end.ocmf", "nzr_ecocount_key.hex"),
}


def _record(name: str) -> str:
    return (PUBLISHED / name).read_text("utf-8").strip()


def _key(name: str) -> str:
    return (PUBLISHED / name).read_text("ascii").strip()


@pytest.mark.parametrize("case", CASES)
def test_a_published_lone_record_exits_zero(case):
    record, key = CASES[case]
    result = runner.invoke(app, ["audit", "ocmf", "--file", str(PUBLISHED / record),
                                 "--public-key", _key(key), "--json"])  # fmt: skip

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.splitlines()[0])
    assert out["verdict"] == "valid"
    checks = out["transaction_checks"]
    assert checks["passed"] is True and checks["failed"] == []
    assert checks["not_applicable"] == ["one_begin_one_end"]
    assert checks["checks"]["one_begin_one_end"]["applicable"] is False
    # The other checks still ran and are reported.
    assert checks["checks"]["meter_status_ok"] == {
        "passed": True, "applicable": True, "detail": "ST=G throughout"
    }


def test_the_begin_and_end_records_together_exit_zero_and_say_why_in_words(tmp_path):
    both = tmp_path / "nzr.ocmf"
    both.write_text(_record("nzr_ecocount_begin.ocmf") + "\n" + _record("nzr_ecocount_end.ocmf") + "\n")

    result = runner.invoke(app, ["audit", "ocmf", "--file", str(both),
                                 "--public-key", str(PUBLISHED / "nzr_ecocount_key.hex")])  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.output.count("signature valid") == 2
    assert "not applicable to a record of one reading" in result.output


def test_a_tampered_published_record_still_exits_one():
    record = _record("dzg_dvh4013_begin.ocmf").replace('"       9.038"', '"       9.039"')
    result = runner.invoke(app, ["audit", "ocmf", "--record", record,
                                 "--public-key", _key("dzg_dvh4013_key.b64")])  # fmt: skip
    assert result.exit_code == 1
    assert "invalid_signature" in result.output


def test_a_fiscal_record_exits_zero():
    key = private_key("secp384r1")
    record = sign(ZAPTEC_FISCAL_PAYLOAD, key, sa="ECDSA-secp384r1-SHA256")
    result = runner.invoke(app, ["audit", "ocmf", "--record", record,
                                 "--public-key", key_forms(key)["pem"], "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verdict"] == "valid"


def test_a_transaction_record_still_needs_its_begin_and_end():
    """Two readings with no end: the check applies and fails (reported; --strict exits 3)."""
    key = private_key("secp384r1")
    payload = ZAPTEC_SESSION_PAYLOAD.replace('"TX":"E"', '"TX":"T"')
    record = sign(payload, key, sa="ECDSA-secp384r1-SHA256")
    verdict = verify(record, key_forms(key)["pem"])
    assert verdict.ok and not verdict.transaction.passed
    assert verdict.transaction.failed == ("one_begin_one_end",)

    plain = runner.invoke(app, ["audit", "ocmf", "--record", record, "--public-key", key_forms(key)["pem"]])
    strict = runner.invoke(
        app, ["audit", "ocmf", "--record", record, "--public-key", key_forms(key)["pem"], "--strict"]
    )
    assert plain.exit_code == 0 and "FAILED one_begin_one_end" in plain.output
    assert strict.exit_code == 3


def test_exit_codes_are_documented_in_help():
    shown = runner.invoke(app, ["audit", "ocmf", "--help"], terminal_width=200)
    text = " ".join(shown.output.split())
    assert "Exit codes: 0 every record's signature is valid" in text
    assert "3 with --strict" in text
