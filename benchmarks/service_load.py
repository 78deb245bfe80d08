"""Load benchmark of the case review service: concurrent clients browsing and saving cases over loopback.

Starts `cryoplan serve` (one uvicorn process, as a user runs it) on a fresh data folder with a SQLite
database (or the PostgreSQL database given by --database-url, which is emptied first), creates the users
through `cryoplan users create`, seeds one case per client, then runs `--clients` concurrent clients for
`--duration-s` seconds. Each client logs in through the login form and loops: the case list page, a random
case's page, and a save of its own case through the API (cookie + CSRF header, optimistic locking with the
version it just read). Prints p50/p95/p99 latency per request kind and overall, throughput, and the errors
(any 5xx, connection failure or unexpected status); exits 1 if there was any.

    .venv/bin/python benchmarks/service_load.py --clients 50 --duration-s 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

PASSWORD = "load-test-password"
CASE_DOCUMENT = {
    "schema_version": 1,
    "patient": {"age": 61, "sex": "female", "ecog": 0},
    "diagnosis": {"type": "hcc", "cirrhosis": True, "liver_disease": "hcv"},
    "labs": {
        "bilirubin": {"value": 1.2, "unit": "mg/dL"},
        "albumin": {"value": 3.6, "unit": "g/dL"},
        "inr": 1.2,
        "platelets": {"value": 95, "unit": "10^9/L"},
    },
    "clinical": {"ascites": "none", "encephalopathy_grade": 0},
    "lesions": [{"id": "L1", "diameter_mm": 28, "segment": 6, "distance_to_bile_duct_mm": 12}],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data_dir: Path, database_url: str | None) -> tuple[subprocess.Popen, str, dict]:
    env = {**os.environ, "CRYOPLAN_DATA_DIR": str(data_dir), "CRYOPLAN_SECRET_KEY": "load-benchmark"}
    if database_url:
        env["CRYOPLAN_DATABASE_URL"] = database_url
    for name, role in (("admin", "admin"), ("coordinator", "coordinator")):
        subprocess.run(
            [sys.executable, "-m", "cryoplan", "users", "create", name, "--role", role],
            env={**env, "CRYOPLAN_NEW_PASSWORD": PASSWORD},
            check=True,
            capture_output=True,
        )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cryoplan", "serve", "--port", str(port)],
        env=env,
        stdout=open(data_dir / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                return server, url, env
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def empty_postgres(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


async def client_loop(
    index: int,
    url: str,
    case_ids: list[int],
    deadline: float,
    seed: int,
    latencies: dict[str, list[float]],
    errors: list[str],
) -> None:
    rng = random.Random(seed * 1000 + index)
    own_case = case_ids[index]
    async with httpx.AsyncClient(base_url=url, timeout=60, follow_redirects=False) as client:
        login = await client.post("/login", data={"username": "coordinator", "password": PASSWORD})
        if login.status_code != 303:
            errors.append(f"client {index}: login {login.status_code}")
            return
        page = await client.get("/")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

        async def timed(kind: str, method: str, path: str, expect: int, **kwargs) -> httpx.Response | None:
            start = time.perf_counter()
            try:
                response = await client.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                errors.append(f"{kind}: {type(error).__name__}: {error}")
                return None
            latencies[kind].append(time.perf_counter() - start)
            if response.status_code != expect:
                errors.append(f"{kind} {path}: {response.status_code} {response.text[:120]}")
                return None
            return response

        while time.monotonic() < deadline:
            await timed("case_list_page", "GET", "/", 200)
            await timed("case_page", "GET", f"/cases/{rng.choice(case_ids)}", 200)
            current = await timed("case_read_api", "GET", f"/api/cases/{own_case}", 200)
            if current is None:
                continue
            body = current.json()
            document = body["case_document"]
            document["labs"]["platelets"]["value"] = rng.randint(40, 300)
            await timed(
                "case_save_api",
                "PUT",
                f"/api/cases/{own_case}",
                200,
                headers={"X-CSRF-Token": csrf},
                json={"version": body["version"], "case_document": document},
            )


async def run_clients(url: str, case_ids: list[int], clients: int, duration_s: float, seed: int):
    latencies = {kind: [] for kind in ("case_list_page", "case_page", "case_read_api", "case_save_api")}
    errors: list[str] = []
    deadline = time.monotonic() + duration_s
    tasks = [
        asyncio.create_task(client_loop(i, url, case_ids, deadline, seed, latencies, errors)) for i in range(clients)
    ]
    with Progress(transient=True) as progress:  # rich writes to stderr here (see console below)
        bar = progress.add_task(f"{clients} clients", total=duration_s)
        start = time.monotonic()
        while not all(task.done() for task in tasks):
            await asyncio.sleep(0.5)
            progress.update(bar, completed=min(duration_s, time.monotonic() - start))
    await asyncio.gather(*tasks)
    return latencies, errors, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (emptied first); default SQLite")
    args = parser.parse_args()

    if args.database_url:
        empty_postgres(args.database_url)
    with tempfile.TemporaryDirectory(prefix="cryoplan-load-") as folder:
        server, url, _env = start_server(Path(folder), args.database_url)
        try:
            token = httpx.post(url + "/api/auth/token", json={"username": "coordinator", "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            case_ids = [
                httpx.post(
                    url + "/api/cases",
                    headers=headers,
                    timeout=60,
                    json={"label": f"Load case {i:03d}", "case_document": CASE_DOCUMENT},
                ).json()["id"]
                for i in range(args.clients)
            ]
            latencies, errors, elapsed_s = asyncio.run(
                run_clients(url, case_ids, args.clients, args.duration_s, args.seed)
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)

    rows = []
    everything = []
    for kind, values in latencies.items():
        everything += values
        rows.append((kind, values))
    rows.append(("all requests", everything))
    print(
        f"cryoplan serve under load: {args.clients} clients for {args.duration_s:g} s over loopback, "
        f"{'PostgreSQL' if args.database_url else 'SQLite (WAL)'}, {os.cpu_count()} CPUs (shared: see README)"
    )
    print("| request | count | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for kind, values in rows:
        if values:
            p50, p95, p99 = np.percentile(np.array(values) * 1000, [50, 95, 99])
            print(f"| {kind} | {len(values)} | {p50:.0f} | {p95:.0f} | {p99:.0f} |")
    print(f"throughput: {len(everything) / elapsed_s:.1f} requests/s; errors: {len(errors)}")
    summary = {
        "schema_version": 1,
        "clients": args.clients,
        "duration_s": args.duration_s,
        "requests": len(everything),
        "errors": len(errors),
        "p50_ms": float(np.percentile(everything, 50) * 1000) if everything else None,
        "p95_ms": float(np.percentile(everything, 95) * 1000) if everything else None,
    }
    print(json.dumps(summary))
    for line in errors[:20]:
        print("error:", line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
