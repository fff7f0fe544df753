"""The installed version: in ``--version``, ``/healthz``, the build-info metric and the
start-up line."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("wecom-sync")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"
