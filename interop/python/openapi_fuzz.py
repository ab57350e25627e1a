"""Schemathesis against the shop's REST API: requests generated from its OpenAPI document alone, valid and invalid,
each answer checked against the document (schemathesis.toml says which checks, with what settings).

    python openapi_fuzz.py <URL of openapi.json> [more `st run` options, e.g. --seed N]

Runs in a temporary folder, since Hypothesis keeps caches under the working folder (nothing lands in the
repository), and refuses to open a connection to anything but this machine. Prints Schemathesis's report, then one
JSON line with the run's numbers; exits non-zero when Schemathesis found a failure or an error, or made no request.
"""

import ipaddress
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

from schemathesis.cli import schemathesis as cli

CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"


def refuse_remote_connections():
    """Makes every socket refuse a peer that is not a loopback address: the run must need no network."""
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
                raise ConnectionRefusedError(f"openapi_fuzz.py refuses to connect outside this machine: {host}")
        return connect(sock, address)

    socket.socket.connect = local_only


def run(document, extra, work):
    """Runs `st run` in `work`; its exit status and its JSON report."""
    report = work / "report.json"
    args = ["--config-file", str(CONFIG), "run", document, "--no-color"]
    args += ["--report", "json", "--report-json-path", str(report), *extra]
    # Hypothesis reads this when it first stores something, not when it is imported.
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(work / "hypothesis")
    os.chdir(work)
    try:
        cli.main(args=args, prog_name="st")
        status = 0
    except SystemExit as end:
        status = end.code or 0
    if not report.exists():
        sys.exit(f"Schemathesis wrote no report (exit status {status})")
    return status, json.loads(report.read_text())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: python openapi_fuzz.py <URL of openapi.json> [st run options]")
    refuse_remote_connections()
    home = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="shop-openapi-fuzz-") as work:
        try:
            status, report = run(sys.argv[1], sys.argv[2:], Path(work))
        finally:
            os.chdir(home)
    numbers = {key: report[key] for key in ("running_time", "operations", "test_cases", "failures", "errors")}
    # A string: the seed has 128 bits, and a JSON reader that makes numbers doubles would print another one.
    numbers["seed"] = str(report["seed"])
    print(json.dumps(numbers), flush=True)
    if report["test_cases"]["generated"] == 0:
        sys.exit("Schemathesis made no request")
    sys.exit(status)


if __name__ == "__main__":
    main()
