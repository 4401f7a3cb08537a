"""Installed plugins: the `plugin.yaml` manifest and discovery under
`FINFOCUS_HOME/plugins/<name>/<version>/` (the newest version of each name wins)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class PluginManifest(BaseModel):
    """`plugin.yaml` of an installed plugin."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="kebab-case plugin name")
    version: str = Field(min_length=1, description="Plugin version (directory name)")
    protocol: int | str = Field(
        1,
        description='1 (this project\'s protocol) or "finfocus.v1" (finfocus-spec CostSourceService)',
    )
    command: list[str] = Field(
        min_length=1, description="Command; {python} = host interpreter, cwd = plugin dir"
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment")
    description: str | None = None


@dataclass
class PluginRef:
    """Where a plugin lives and how to start it."""

    manifest: PluginManifest
    directory: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    def argv(self) -> list[str]:
        return [
            part.replace("{python}", sys.executable).replace("{dir}", str(self.directory))
            for part in self.manifest.command
        ]


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-+]", version))


def _spec_layout(directory: Path) -> dict | None:
    """A finfocus-spec install (an executable, no plugin.yaml): see finfocus_spec.layout."""
    from services.pricing.finfocus_spec.layout import spec_manifest_data

    return spec_manifest_data(directory)


def load_manifest(directory: Path) -> PluginRef:
    """The plugin in `directory` (its plugin.yaml, or a finfocus-spec install without one);
    raises ValueError with the reason."""
    path = directory / "plugin.yaml"
    spec_install = None if path.exists() else _spec_layout(directory)
    try:
        data = spec_install if spec_install is not None else yaml.safe_load(path.read_text())
        manifest = PluginManifest.model_validate(data)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
            )
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if manifest.protocol not in (1, "finfocus.v1"):
        raise ValueError(f"protocol {manifest.protocol} is not supported (1 or finfocus.v1)")
    return PluginRef(manifest, directory)


def discover(
    plugins_dir: Path, *, all_versions: bool = False
) -> tuple[list[PluginRef], list[tuple[Path, str]]]:
    """Installed plugins under `<plugins_dir>/<name>/<version>/` (the newest version of each
    unless `all_versions`), and the directories that are not valid plugins, with the reason."""
    found: dict[str, list[PluginRef]] = {}
    problems: list[tuple[Path, str]] = []
    if not plugins_dir.is_dir():
        return [], []
    for name_dir in sorted(p for p in plugins_dir.iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
            try:
                ref = load_manifest(version_dir)
            except ValueError as exc:
                problems.append((version_dir, str(exc)))
                continue
            if ref.name != name_dir.name or ref.manifest.version != version_dir.name:
                problems.append((version_dir, f"manifest says {ref.name}/{ref.manifest.version}"))
                continue
            found.setdefault(ref.name, []).append(ref)
    refs: list[PluginRef] = []
    for versions in found.values():
        versions.sort(key=lambda r: _version_key(r.manifest.version))
        refs.extend(versions if all_versions else versions[-1:])
    return refs, problems
