"""The environment a tap, a target or Meltano runs with in tests and benchmarks.

A developer's own settings (``TAP_SMARTFLO_API_TOKEN``, a log level, a Meltano
project's variables) would change what a run does, or send it to a real account.
"""

from __future__ import annotations

import os

#: Variables with these prefixes are a developer's settings for a plugin or Meltano.
PRIVATE_PREFIXES = ("TAP_SMARTFLO_", "TARGET_JSONL_", "TARGET_POSTGRES_", "MELTANO_")
#: The Singer SDK's logging switches (level, and a logging config file).
LOGGING_VARIABLES = ("LOGLEVEL", "SINGER_SDK_LOG_CONFIG")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without a developer's settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(PRIVATE_PREFIXES) and name not in LOGGING_VARIABLES
    }
    env.update(extra)
    return env
