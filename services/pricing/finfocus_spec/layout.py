"""Plugins installed the way finfocus-spec's CLI installs them:
`<plugins>/<name>/<version>/` holding an executable (`finfocus-plugin-<name>`, `<name>`, or the
only executable there) and optionally `plugin.manifest.json` (`name`, `version`,
`description`, ...). No `plugin.yaml` is needed: such a directory is read as a `finfocus.v1`
plugin started as `<binary> --port=<port>`. Outside that tree (an unpacked release handed to
`finfocus plugin install`), the name comes from the manifest, else from the binary's name
(`finfocus-plugin-<name>`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from services.pricing.finfocus_spec.adapter import PROTOCOL

_NOT_PROGRAMS = {".json", ".md", ".txt", ".yaml", ".yml", ".sha256", ".sig", ".pem", ".log"}


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.suffix.lower() not in _NOT_PROGRAMS


def spec_manifest_data(directory: Path) -> dict | None:
    """`plugin.yaml`-shaped data for a finfocus-spec install in `directory`, or None."""
    name, version = directory.parent.name, directory.name
    meta: dict = {}
    meta_path = directory / "plugin.manifest.json"
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text())
            meta = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            meta = {}
    programs = (
        sorted(p for p in directory.iterdir() if _executable(p)) if directory.is_dir() else []
    )
    binary = next((p for p in programs if p.name in {f"finfocus-plugin-{name}", name}), None)
    if binary is None and len(programs) == 1:
        binary = programs[0]
    if binary is None:
        return None
    description = meta.get("description") if isinstance(meta.get("description"), str) else None
    if not binary.name.startswith((f"finfocus-plugin-{name}", name)) and binary.name.startswith(
        "finfocus-plugin-"
    ):
        name = binary.name.removeprefix(
            "finfocus-plugin-"
        )  # an unpacked release outside the plugins tree
    return {
        "name": meta.get("name") if isinstance(meta.get("name"), str) else name,
        "version": meta.get("version") if isinstance(meta.get("version"), str) else version,
        "protocol": PROTOCOL,
        "command": ["{dir}/" + binary.name],
        "description": description or f"finfocus-spec plugin ({binary.name})",
    }
