"""Wall time of the case page's probe-layout preview (POST /api/cases/N/preview): three 1.7 mm probes at the
corners of a 12 mm triangle, freeze 10 – passive thaw 5 – freeze 10 min (25 min), 2 mm grid, in liver, on a
live app (TestClient, SQLite); the target is 3 s on 2 cores. The first call compiles the engine's kernels
and is reported apart. With the real data present, the same layout is also previewed around the tumour
written into set 02's labels, where each path is re-checked on the segmentation and the tumour's coverage
read from it (what a dragged probe costs on a real case). The machine's copy bandwidth, the peer stencil's
time and the load average are printed beside, since the figure depends on how busy the machine is.

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

import numpy as np
from common import copy_bandwidth_gb_s, markdown_table, peer_stencil_s
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.service import CASE_DOCUMENT, create_users  # noqa: E402
from support.set02_tumour import LABELS_MAP, TUMOUR_LABEL, labels_with_tumour  # noqa: E402

from cryoplan.imaging.io import read_labels  # noqa: E402
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
    set02 = Path(__file__).resolve().parents[2] / "shared" / "data" / "02_totalseg_ct_sm_vessels"
    rows = []
    with TestClient(app) as client:
        cases = [("no segmentation", CASE_DOCUMENT, None, (0.0, 0.0, 0.0))]
        if set02.is_dir():
            labels_path = folder / "labels_with_tumour.nii.gz"
            labels_with_tumour(set02 / "example_seg.nii.gz", labels_path)
            labels = read_labels(labels_path)
            centre = labels.index_to_lps(np.argwhere(np.asarray(labels.array) == TUMOUR_LABEL)).mean(axis=0)
            document = {**CASE_DOCUMENT, "imaging": {"labels_map": LABELS_MAP}}
            cases.append(("set 02 + tumour", document, labels_path, tuple(centre)))
        for name, document, labels_path, centre in cases:
            case = client.post("/api/cases", json={"label": "bench", "case_document": document}, headers=headers)
            case_id = case.json()["id"]
            if labels_path is not None:
                files = {"file": (labels_path.name, labels_path.read_bytes())}
                client.post(f"/api/cases/{case_id}/documents", headers=headers, files=files, data={"purpose": "labels"})
            probes = [
                {
                    "type": "1.7mm",
                    "tip_lps_mm": [centre[0] + 6.93 * math.cos(a), centre[1] + 6.93 * math.sin(a), centre[2] + 5.0],
                    "entry_lps_mm": [centre[0] + 6.93 * math.cos(a), centre[1] + 6.93 * math.sin(a), centre[2] - 75.0],
                }
                for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
            ]
            body = {"probes": probes, "protocol": "freeze:10,passive_thaw:5,freeze:10"}
            for run in range(args.repeats + 1):
                started = time.perf_counter()
                answer = client.post(f"/api/cases/{case_id}/preview", json=body, headers=headers).json()
                wall = time.perf_counter() - started
                covered = answer["tumour_covered_pct"]
                rows.append(
                    [
                        name,
                        "first (compiles)" if run == 0 and name == cases[0][0] else f"run {run}",
                        f"{wall:.2f}",
                        f"{answer['simulation_s']:.2f}",
                        f"{answer['isotherm_volumes_ml']['-20']:.1f}",
                        "–" if covered is None else f"{covered:.1f}",
                        f"{os.getloadavg()[0]:.1f}",
                    ]
                )
    columns = ["case", "call", "wall (s)", "simulation (s)", "-20 °C volume (ml)", "tumour covered (%)", "load average"]
    print(markdown_table(columns, rows))
    print(
        f"copy bandwidth {copy_bandwidth_gb_s():.1f} GB/s; peer stencil {peer_stencil_s():.3f} s; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
