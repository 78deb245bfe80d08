"""Upload flood against a memory cap: concurrent oversized chunked uploads to the case review service.

Starts the service (uvicorn with `cryoplan.service.app:create_app`, the app `cryoplan serve` runs, in a
process of its own) on loopback with a fresh data folder, under an address-space cap (``prlimit --as``)
of its idle address space plus ``--cap-mb``. Then ``--uploads`` clients at once each stream a
``--size-mib`` body with no Content-Length (chunked transfer), in turn: to the login route (JSON, no
login), to the document-upload route without a token, and to it with a bearer token, against an upload
limit of half that size. Each client stops sending as soon as the server answers. Prints every answer,
how many bytes each client sent before it, the server's peak resident memory (sampled every 50 ms), and
whether the server still answers; exits 1 unless every body was refused (413; 401 for an upload with no
credentials, before its body is read) and the server survived. Loopback only; bounded by ``--timeout-s``.

    .venv/bin/python benchmarks/service_upload_flood.py --uploads 10 --size-mib 200 --cap-mb 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.progress import Progress

PASSWORD = "flood-benchmark-password"
CHUNK = 2**16


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start_server(folder: Path, port: int, address_space_kib: int | None, upload_limit_mib: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "CRYOPLAN_DATA_DIR": str(folder / "data"),
        "CRYOPLAN_SECRET_KEY": "flood-benchmark",
        "CRYOPLAN_MAX_UPLOAD_MB": str(upload_limit_mib),
        "TMPDIR": str(folder),  # multipart spooling, removed with the folder
    }
    subprocess.run(
        [sys.executable, "-m", "cryoplan", "users", "create", "coordinator", "--role", "coordinator"],
        env={**env, "CRYOPLAN_NEW_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "cryoplan.service.app:create_app", "--port", str(port)]
    if address_space_kib is not None:
        command = ["prlimit", f"--as={address_space_kib * 1024}", "--", *command]
    server = subprocess.Popen(
        command, env=env, stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError(f"the server exited at start: {(folder / 'server.log').read_text()[-2000:]}")
    raise RuntimeError("the server did not start")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


# (target, route, token?, content type, start of the body, the answer expected): the body then runs on with
# "0" bytes. An upload without any credentials is refused before its body is read.
KINDS = [
    ("login", "/api/auth/token", False, "application/json", b'{"username": "coordinator", "password": "', 413),
    ("upload", "/api/cases/{case}/documents", False, "multipart/form-data; boundary=flood", b"", 401),
    ("upload", "/api/cases/{case}/documents", True, "multipart/form-data; boundary=flood", b"", 413),
]
PART = b'--flood\r\nContent-Disposition: form-data; name="file"; filename="scan.pdf"\r\n\r\n%PDF-1.4\n'


async def chunked_body(
    port: int, path: str, token: str | None, content_type: str, part: bytes, size: int, deadline: float
) -> tuple[str, int]:
    """Stream a body of `size` bytes with chunked transfer; returns (the answer's status line, bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: {content_type}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n"
    )
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        writer.write(head.encode())
        body = part
        while sent < size and time.monotonic() < deadline:
            data = body + b"0" * (CHUNK - len(body))
            body = b""
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            sent += len(data)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    sender = asyncio.create_task(send_body())
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=max(1.0, deadline - time.monotonic()))
    except (TimeoutError, ConnectionError) as error:
        line = f"no answer: {type(error).__name__}".encode()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    return line.decode(errors="replace").strip() or "connection closed without an answer", sent


def sample_memory(pid: int, stop_event: threading.Event, peak: dict) -> None:
    while not stop_event.is_set():
        try:
            peak["rss_kib"] = max(peak["rss_kib"], status_kib(pid, "VmRSS"))
            peak["vm_kib"] = max(peak["vm_kib"], status_kib(pid, "VmSize"))
        except (OSError, KeyError):
            return
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=10, help="Concurrent uploads (at most 50).")
    parser.add_argument("--size-mib", type=float, default=200.0, help="Size of each upload body.")
    parser.add_argument("--cap-mb", type=float, default=300.0, help="Address space allowed above the idle server's.")
    parser.add_argument("--timeout-s", type=float, default=180.0)
    args = parser.parse_args()
    if not 1 <= args.uploads <= 50:
        parser.error("--uploads: 1 to 50")
    size = int(args.size_mib * 2**20)
    upload_limit_mib = args.size_mib / 2

    with tempfile.TemporaryDirectory(prefix="cryoplan-flood-") as name:
        folder = Path(name)
        # Measure the idle server's address space, then start it again under that plus the cap.
        (folder / "probe").mkdir()
        probe = start_server(folder / "probe", free_port(), None, upload_limit_mib)
        idle_vm_kib, idle_rss_kib = status_kib(probe.pid, "VmSize"), status_kib(probe.pid, "VmRSS")
        stop(probe)
        cap_kib = idle_vm_kib + int(args.cap_mb * 1e6 / 1024)
        (folder / "capped").mkdir()
        port = free_port()
        server = start_server(folder / "capped", port, cap_kib, upload_limit_mib)
        try:
            url = f"http://127.0.0.1:{port}"
            token = httpx.post(url + "/api/auth/token", json={"username": "coordinator", "password": PASSWORD})
            token = token.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            case = httpx.post(
                url + "/api/cases",
                headers=headers,
                json={"label": "flood", "case_document": {"schema_version": 1}},
                timeout=60,
            ).json()
            peak = {"rss_kib": 0, "vm_kib": 0}
            stop_event = threading.Event()
            # prlimit execs uvicorn, so the server is the child process itself.
            sampler = threading.Thread(target=sample_memory, args=(server.pid, stop_event, peak), daemon=True)
            sampler.start()
            deadline = time.monotonic() + args.timeout_s

            kinds = [KINDS[i % len(KINDS)] for i in range(args.uploads)]

            async def flood():
                tasks = [
                    chunked_body(
                        port,
                        route.format(case=case["id"]),
                        token if with_token else None,
                        content_type,
                        part or PART,
                        size,
                        deadline,
                    )
                    for _, route, with_token, content_type, part, _ in kinds
                ]
                with Progress(transient=True) as progress:
                    progress.add_task(f"{args.uploads} bodies of {args.size_mib:g} MiB", total=None)
                    return await asyncio.gather(*tasks)

            start = time.monotonic()
            answers = asyncio.run(flood())
            elapsed_s = time.monotonic() - start
            stop_event.set()
            sampler.join()
            alive = server.poll() is None
            after = httpx.get(url + "/api/me", headers=headers, timeout=30) if alive else None
            documents = httpx.get(url + f"/api/cases/{case['id']}/documents", headers=headers, timeout=30).json()
        finally:
            stop(server)
        spooled = [p for p in folder.rglob("tmp*") if p.is_file()]

    print(
        f"upload flood: {args.uploads} concurrent chunked bodies of {args.size_mib:g} MiB (upload limit "
        f"{upload_limit_mib:g} MiB) to login and upload routes, over loopback; {os.cpu_count()} CPUs"
    )
    print(
        f"server idle: {idle_rss_kib / 1024:.0f} MiB resident, {idle_vm_kib / 1024:.0f} MiB address space; "
        f"cap (prlimit --as): {cap_kib / 1024:.0f} MiB = idle + {args.cap_mb:g} MB"
    )
    print("| body | route | token | answer | MiB sent before the answer |")
    print("|---|---|---|---|---|")
    for index, ((line, sent), (target, _, with_token, _, _, _)) in enumerate(zip(answers, kinds)):
        print(f"| {index} | {target} | {'yes' if with_token else 'no'} | {line} | {sent / 2**20:.1f} |")
    print(
        f"peak during the flood: {peak['rss_kib'] / 1024:.0f} MiB resident, {peak['vm_kib'] / 1024:.0f} MiB "
        f"address space; {elapsed_s:.1f} s; server alive after: {alive}, answers /api/me: "
        f"{after.status_code if after is not None else None}; documents stored: {len(documents)}; "
        f"spooled files left: {len(spooled)}"
    )
    as_expected = all(line.startswith(f"HTTP/1.1 {kind[-1]} ") for (line, _), kind in zip(answers, kinds))
    summary = {
        "schema_version": 1,
        "uploads": args.uploads,
        "size_mib": args.size_mib,
        "cap_mib": cap_kib / 1024,
        "idle_rss_mib": idle_rss_kib / 1024,
        "peak_rss_mib": peak["rss_kib"] / 1024,
        "all_refused_as_expected": as_expected,
        "server_alive": alive and after is not None and after.status_code == 200,
    }
    print(json.dumps(summary))
    return 0 if as_expected and summary["server_alive"] and not documents else 1


if __name__ == "__main__":
    sys.exit(main())
