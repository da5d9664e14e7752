"""Run many ``zapanalytics`` command lines, each in its own forked process, from one interpreter.

    python tests/badinput/cli_driver.py < cases.json > results.json

``cases.json`` is a list of ``{"id": ..., "argv": [...], "env": {...}}`` (``env`` optional:
variables set, or removed when null, for that case only). The driver imports the console
script's modules once, then forks one child per case: the child points its stdout and stderr
(file descriptors 1 and 2) at files, sets ``sys.argv`` and calls
:func:`zapanalytics.cli.main` exactly as the installed console script does, and exits with the
code the command chose. What reaches the child's stderr is what a user would see; if an
exception escaped the CLI's error boundary, the child prints the traceback as Python would and
exits 1, so the test sees it. Starting the interpreter once keeps a 100-case sweep fast.

Each result also carries the child's peak resident memory (``max_rss_kb``, from ``wait4``
as GNU ``time -f %M`` reports it; a forked child starts with the driver's own resident
pages, so compare cases with each other) and its wall time (``seconds``). A case may set
``timeout_s``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

#: A command taking longer than this is reported as hung [s].
CASE_TIMEOUT_S = 120


def _preload() -> None:
    # Import what the commands import lazily, so each child starts warm. Only imports:
    # nothing may start worker threads in the parent before it forks.
    import zapanalytics.audit.ocmf  # noqa: F401
    import zapanalytics.billing.monthly  # noqa: F401
    import zapanalytics.billing.statements  # noqa: F401
    import zapanalytics.cli  # noqa: F401
    import zapanalytics.export  # noqa: F401
    import zapanalytics.ingest.ocpp.load  # noqa: F401
    import zapanalytics.ingest.portal.export  # noqa: F401
    import zapanalytics.ingest.prices.spot  # noqa: F401
    import zapanalytics.ingest.zaptec.files  # noqa: F401
    import zapanalytics.ingest.zaptec.sync  # noqa: F401
    import zapanalytics.store  # noqa: F401


def _child(
    argv: list[str], env: dict[str, str | None], out_path: str, err_path: str, timeout_s: int
) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    signal.alarm(timeout_s)
    sys.argv = ["zapanalytics", *argv]
    code = 0
    try:
        from zapanalytics.cli import main

        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reproduce what the interpreter would show a user
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def run_cases(cases: list[dict]) -> list[dict]:
    _preload()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, case in enumerate(cases):
            out_path = str(Path(scratch) / f"{number}.out")
            err_path = str(Path(scratch) / f"{number}.err")
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(case["argv"], case.get("env") or {}, out_path, err_path,
                       int(case.get("timeout_s", CASE_TIMEOUT_S)))
            _, status, usage = os.wait4(pid, 0)
            seconds = time.monotonic() - started
            if os.WIFSIGNALED(status):
                code = -os.WTERMSIG(status)
            else:
                code = os.WEXITSTATUS(status)
            results.append({
                "id": case["id"],
                "exit_code": code,
                "stdout": Path(out_path).read_text("utf-8", "backslashreplace"),
                "stderr": Path(err_path).read_text("utf-8", "backslashreplace"),
                "max_rss_kb": usage.ru_maxrss,
                "seconds": seconds,
            })
    return results


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump(run_cases(cases), sys.stdout)


if __name__ == "__main__":
    main()
