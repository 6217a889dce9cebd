"""The one way from command-line flags to ``Settings``: a flag the user gave > ``DEBRIEF_*`` environment > default."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic_settings import BaseSettings

from debrief.server.settings import Settings

SETTINGS_FLAGS: dict[str, str] = {
    "data_dir": "data_dir",
    "chroma_url": "chroma_url",
    "base_url": "models.base_url",
    "model": "models.name",
    "reflect_model": "models.reflect_name",
    "api_key": "models.api_key",
}
"""Each flag (its argparse ``dest``) that sets a setting, and the setting's dotted path in ``Settings``."""


def settings_from_flags(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with every settings flag the user gave (not ``None``) taking precedence."""
    top: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for dest, path in SETTINGS_FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        group, _, field = path.rpartition(".")
        if group:
            groups.setdefault(group, {})[field] = value
        else:
            top[field] = value
    for group, fields in groups.items():
        # The group reads the rest of its fields from the environment, as it would have without the flag.
        group_class = Settings.model_fields[group].annotation
        assert isinstance(group_class, type) and issubclass(group_class, BaseSettings)
        top[group] = group_class(**fields)
    return Settings(**top)
