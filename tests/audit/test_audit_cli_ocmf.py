"""``zapanalytics audit ocmf`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from audit_helpers import (
    ZAPTEC_FISCAL_PAYLOAD,
    ZAPTEC_SESSION_PAYLOAD,
    key_forms,
    private_key,
    sign,
    tamper_digit,
)
from typer.testing import CliRunner

from zapanalytics.cli import app
from zapanalytics.cli.errors import UserError

runner = CliRunner()
SA = "ECDSA-secp384r1-SHA256"


@pytest.fixture
def key():
    return private_key("secp384r1")


def test_one_valid_record_exits_zero_and_describes_the_transaction(key):
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SA)

    result = runner.invoke(
        app, ["audit", "ocmf", "--record", record, "--public-key", key_forms(key)["base64_der"]]
    )

    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "8.715 kWh" in result.output


def test_a_file_of_records_gives_one_json_object_per_line_and_exit_one(tmp_path, key):
    good = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SA)
    lines = [
        good,
        tamper_digit(good, "1546.403", "1556.403"),
        "OCMF|" + ZAPTEC_FISCAL_PAYLOAD,
        "not a record",
    ]
    records = tmp_path / "records.txt"
    records.write_text("\n".join(lines) + "\n\n")
    key_file = tmp_path / "key.pem"
    key_file.write_text(key_forms(key)["pem"])

    result = runner.invoke(
        app, ["audit", "ocmf", "--file", str(records), "--public-key", str(key_file), "--json"]
    )

    assert result.exit_code == 1
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["verdict"] for o in objects] == [
        "valid",
        "invalid_signature",
        "unsigned",
        "malformed",
    ]
    for obj in objects:
        assert {"verdict", "reason", "readings", "transaction_checks"} <= obj.keys()
    assert objects[0]["transaction_checks"]["energy_kwh"] == pytest.approx(8.715)
    assert objects[1]["transaction_checks"]["energy_kwh"] == pytest.approx(18.715)
    assert [r["value"] for r in objects[0]["readings"]] == ["1537.688", "1542.951", "1546.403"]
    assert objects[2]["transaction_checks"] is None  # a fiscal record is no transaction
    assert objects[3]["reason"] == "the record does not start with 'OCMF|'"


def test_a_valid_signature_on_a_failing_transaction_is_reported_and_strict_exits_three(key):
    """Exit 0 means every signature is valid; the failing check is in the output, and
    ``--strict`` turns it into exit code 3."""
    payload = ZAPTEC_SESSION_PAYLOAD.replace(
        '"RV":1542.951,"RI":"1-0:1.8.0","RT":"AC","ST":"G"', '"RT":"AC","ST":"E"'
    )
    record = sign(payload, key, sa=SA)
    args = ["audit", "ocmf", "--record", record, "--public-key", key_forms(key)["hex_der"], "--json"]

    result = runner.invoke(app, args)
    strict = runner.invoke(app, [*args, "--strict"])

    assert result.exit_code == 0
    assert strict.exit_code == 3
    obj = json.loads(result.stdout)
    assert obj["verdict"] == "valid"
    assert obj["transaction_checks"]["failed"] == ["meter_status_ok"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--public-key", "KEY"], "exactly one of --record"),
        (["--record", "x", "--file", "y", "--public-key", "KEY"], "exactly one of --record"),
        (["--file", "/nonexistent/records.txt", "--public-key", "KEY"], "no such file"),
        (["--record", "RECORD", "--public-key", "garbage!"], "--public-key"),
    ],
)
def test_usage_errors_are_user_errors(args, message, key):
    record = sign(ZAPTEC_SESSION_PAYLOAD, key, sa=SA)
    args = [record if a == "RECORD" else key_forms(key)["pem"] if a == "KEY" else a for a in args]

    result = runner.invoke(app, ["audit", "ocmf", *args])

    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)


def test_the_console_script_prints_one_line_errors_without_a_traceback():
    command = [
        sys.executable,
        "-c",
        "from zapanalytics.cli import main; main()",
        "audit",
        "ocmf",
        "--record",
        "OCMF|{}",
        "--public-key",
        "garbage!",
    ]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert completed.stderr.startswith("error: --public-key")


def test_audit_without_a_store_or_subcommand_shows_help():
    result = runner.invoke(app, ["audit"])

    assert result.exit_code == 2
    assert "ocmf" in result.output
