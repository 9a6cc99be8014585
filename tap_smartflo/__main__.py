"""Run the tap as ``python -m tap_smartflo``."""

from tap_smartflo.tap import TapSmartflo

TapSmartflo.cli()
