"""The service's settings: one pydantic-settings object read from ``CRYOPLAN_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryoplan.errors import InputError
from cryoplan.output import write_text


def default_workers() -> int:
    """Worker processes of the default LocalCluster: one per core this process may run on (as the planner's
    own cluster, `cryoplan.planning.uncertainty.default_workers`, which the server does not import)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ServiceSettings(BaseSettings):
    """Settings of `cryoplan serve`.

    Every field is read from the environment variable ``CRYOPLAN_<FIELD NAME>``, e.g. ``CRYOPLAN_DATA_DIR``.
    """

    model_config = SettingsConfigDict(env_prefix="CRYOPLAN_", extra="ignore")

    data_dir: Path = Field(
        Path("cryoplan-data"), description="Where documents, job outputs and the default database live."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file cryoplan.db in data_dir (WAL mode)."
    )
    secret_key: str | None = Field(
        None,
        description="Keys the pseudonymous UIDs of referral packets; default: a random key in data_dir/secret_key.",
    )
    dask_scheduler: str | None = Field(
        None, description="Address of a Dask scheduler; default: a LocalCluster started on first use."
    )
    dask_workers: int = Field(
        default_factory=default_workers,
        ge=1,
        description="Worker processes of the default LocalCluster (one per usable core).",
    )
    max_upload_mb: float = Field(200.0, gt=0, description="Largest document accepted, in MiB.")
    max_unzipped_mb: float = Field(1024.0, gt=0, description="Largest total a DICOM zip may expand to, in MiB.")
    max_zip_ratio: float = Field(200.0, gt=1, description="Largest expansion ratio of one zip entry (zip-bomb guard).")
    max_image_mb: float = Field(
        1024.0, gt=0, description="Largest decoded image (header dimensions × voxel size) of a NIfTI or NRRD, MiB."
    )
    max_json_kb: float = Field(
        1024.0, gt=0, description="Largest body of any request but a document upload (JSON or form), in KiB."
    )
    max_json_depth: int = Field(32, ge=2, le=1000, description="Deepest nesting of a JSON request body.")
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins from one address, or of one user name, before they are slowed down."
    )
    login_window_s: float = Field(900.0, gt=0, description="Window in which failed logins are counted, in seconds.")
    login_max_backoff_s: float = Field(
        900.0, gt=0, description="Longest wait imposed on an address after repeated failed logins, in seconds."
    )
    login_max_delay_s: float = Field(
        4.0, ge=0, description="Longest delay added to each login of a user name under attack, in seconds."
    )
    forwarded_allow_ips: str = Field(
        "",
        description="Addresses of reverse proxies trusted for X-Forwarded-For/-Proto (uvicorn's forwarded_allow_ips, "
        "comma-separated); default none: the client address is the TCP peer.",
    )
    session_max_age_s: int = Field(
        8 * 3600, gt=0, description="Lifetime of a session cookie and of an API token, in seconds."
    )
    secure_cookies: bool = Field(False, description="Mark cookies Secure (set when served over HTTPS).")
    job_max_attempts: int = Field(2, ge=1, description="Starts of a job before a server restart marks it failed.")
    plan_grid_mm: float = Field(
        1.0, ge=0.5, le=3.0, description="Grid spacing of a plan's final full simulation, mm (coarser is quicker)."
    )
    uncertainty_samples: int = Field(50, ge=1, le=10000, description="Monte Carlo samples of an uncertainty job.")
    plan_seed: int = Field(0, ge=0, description="Seed of the random choices of plan and uncertainty jobs.")

    def __init__(self, **values: Any) -> None:
        """Read the settings; a bad value raises `InputError` naming its environment variable."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            first = error.errors()[0]
            raise InputError(
                f"CRYOPLAN_{str(first['loc'][0]).upper()}", first["msg"].lower(), first.get("input")
            ) from None

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'cryoplan.db').resolve()}"

    def resolved_secret_key(self) -> str:
        """The cookie-signing key: the configured one, else one generated once and kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_text(path, secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()
