"""What the benchmarks share: a scratch PostgreSQL database, servers in subprocesses, stats."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-0123456789abcdef-0123456789"
API_KEY = "bench-api-key"
FERNET_KEY = "q3Xv8m2X4c0yq4cQxGmK0n5W3hS6uQ1e9Zr7tYbNfVw="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def scratch_database(name: str | None = None) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database; dropped afterwards."""
    name = name or f"chat_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    try:
        from app.__main__ import migrate

        migrate(url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def signed_query(shop: str, **extra: str) -> str:
    """A storefront request's query string, signed as Shopify's app proxy signs it."""
    from app.shopify import sign_proxy_query

    params = {
        "shop": shop,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
        **extra,
    }
    params["signature"] = sign_proxy_query(params, SECRET)
    return urlencode(params)


class HTTPClient:
    """One bare HTTP/1.1 keep-alive connection, for load that costs the machine little.

    The load shares two cores with the server it measures, so its own CPU shows up in the
    figures: through httpx, a history page took 3.5-4.4 ms, through this 2.3 ms; and turn
    throughput topped out at what the *client* could send (about 150 turns a second for the
    hand-written baseline, which serves 450 to this client), which hid a 2x difference.
    """

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> HTTPClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(
        self, method: str, target: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request, read the whole response (by length, or chunked): status, body."""
        assert self.reader is not None and self.writer is not None
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.lower().split(b":", 1) for line in lines[1:] if line)
        if b"content-length" in fields:
            return status, await self.reader.readexactly(int(fields[b"content-length"]))
        if fields.get(b"transfer-encoding", b"").strip() != b"chunked":
            raise RuntimeError(f"{method} {target}: neither a length nor chunks")
        chunks = []
        while size := int(await self.reader.readuntil(b"\r\n"), 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readexactly(2)
        return status, b"".join(chunks)


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


class Server:
    """A uvicorn process on loopback, one worker, as production runs it."""

    def __init__(
        self, app: str, env: dict[str, str], *, workers: int = 1, module: str | None = None
    ) -> None:
        """`app` is served by uvicorn; with `module`, `python -m module PORT` serves itself."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = (
            [sys.executable, "-m", module, str(self.port)]
            if module
            else [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--workers",
                str(workers),
                # The service with the server limits of the Procfile; the baselines as uvicorn is.
                *(["--http", "app.server:BoundedHttpProtocol"] if app == "app.main:app" else []),
            ]
        )
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.1)

    def rss_kib(self) -> int:
        """Resident memory of the server process and its children."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def shop_token() -> str:
    """An access token as the service stores one (encrypted): one it cannot read would send
    the merchant's calls to a token exchange, which a benchmark has nobody to answer."""
    from app.crypto import TokenCipher

    return TokenCipher(FERNET_KEY).encrypt("shpat_bench") or ""


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SHOPIFY_API_KEY": API_KEY,
        "SHOPIFY_API_SECRET": SECRET,
        "TOKEN_ENCRYPTION_KEY": FERNET_KEY,
        "SHOPIFY_APP_URL": "https://chat.example.com",  # production asks for its public URL
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_SESSION": "1000000",
        "RATE_LIMIT_IP": "1000000",
        "RATE_LIMIT_SHOP": "1000000",
        **extra,
    }
