"""Real uvicorn worker processes for the fault tests: killed, starved, or cut off from the
database without taking the test process down with them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.factories import TEST_API_KEY, TEST_API_SECRET
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def uvicorn_command(port: int) -> list[str]:
    """`uvicorn app.main:app` with the server's limits, quiet."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--http",
        "app.server:BoundedHttpProtocol",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def procfile_command(port: int) -> list[str]:
    """The Procfile's web command, word for word but for the port and the loopback host."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    args = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)))
    args[args.index("--host") + 1] = "127.0.0.1"
    assert args[0] == "uvicorn"
    return [sys.executable, "-m", *args]


def start_worker(
    database_url: str,
    *,
    log: Path | None = None,
    command: Callable[[int], list[str]] = uvicorn_command,
    **env: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """A worker (`command` on a free loopback port), configured through its environment.

    Its output goes to `log` when given (for a test to read), else to the test's own.
    """
    port = free_port()
    output = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        command(port),
        cwd=ROOT,
        env={
            **os.environ,
            "APP_ENV": "development",
            "SHOPIFY_API_KEY": TEST_API_KEY,
            "SHOPIFY_API_SECRET": TEST_API_SECRET,
            "DATABASE_URL": database_url,
            "SHOPIFY_ADMIN_BASE_URL": "http://127.0.0.1:9",
            "LOG_LEVEL": "warning",
            # The whole suite shares 127.0.0.1: limits as high as the in-process servers'.
            "RATE_LIMIT_IP": "1000000",
            "RATE_LIMIT_SESSION": "1000",
            "RATE_LIMIT_SHOP": "1000000",
            **env,
        },
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
    )
    if output is not None:
        output.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return process, url
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_worker(process)
                raise AssertionError(f"the worker on {url} did not start") from None
            time.sleep(0.1)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Terminate (then kill) a worker that still runs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
