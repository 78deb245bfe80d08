"""Wall time of the case page's probe-layout preview (POST /api/cases/N/preview): three 1.7 mm probes at the
corners of a 12 mm triangle, freeze 10 – passive thaw 5 – freeze 10 min (25 min), 2 mm grid, in liver, on a
live app (TestClient, SQLite); the target is 3 s on 2 cores. The first call compiles the engine's kernels
and is reported apart. The machine's copy bandwidth, the peer stencil's time and the load average are
printed beside, since the figure depends on how busy the machine is.

    .venv/bin/python benchmarks/web_preview.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from common import copy_bandwidth_gb_s, markdown_table, peer_stencil_s
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.service import CASE_DOCUMENT, create_users  # noqa: E402

from cryoplan.service.app import create_app  # noqa: E402
from cryoplan.service.settings import ServiceSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    settings = ServiceSettings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 's.db'}", secret_key="b")
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {create_users(app)['clinician']}"}
    with TestClient(app) as client:
        case = client.post("/api/cases", json={"label": "bench", "case_document": CASE_DOCUMENT}, headers=headers)
        url = f"/api/cases/{case.json()['id']}/preview"
        probes = [
            {
                "type": "1.7mm",
                "tip_lps_mm": [6.93 * math.cos(a), 6.93 * math.sin(a), 0.0],
                "entry_lps_mm": [6.93 * math.cos(a), 6.93 * math.sin(a), -80.0],
            }
            for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
        ]
        body = {"probes": probes, "protocol": "freeze:10,passive_thaw:5,freeze:10"}
        rows = []
        for run in range(args.repeats + 1):
            started = time.perf_counter()
            answer = client.post(url, json=body, headers=headers).json()
            wall = time.perf_counter() - started
            rows.append(
                [
                    "first (compiles)" if run == 0 else f"run {run}",
                    f"{wall:.2f}",
                    f"{answer['simulation_s']:.2f}",
                    f"{answer['isotherm_volumes_ml']['-20']:.1f}",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
    print(markdown_table(["call", "wall (s)", "simulation (s)", "-20 °C volume (ml)", "load average"], rows))
    print(
        f"copy bandwidth {copy_bandwidth_gb_s():.1f} GB/s; peer stencil {peer_stencil_s():.3f} s; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
