"""Planning tests keep their isotherm-chart cache in a folder of their own, not in the user's home."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def chart_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chart-cache")
    previous = os.environ.get("CRYOPLAN_CACHE_DIR")
    os.environ["CRYOPLAN_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("CRYOPLAN_CACHE_DIR", None)
    else:
        os.environ["CRYOPLAN_CACHE_DIR"] = previous
