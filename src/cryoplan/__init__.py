"""cryoplan: eligibility, planning, simulation and verification of liver-tumour cryoablation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryoplan")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
