"""Built-in pricing plugins. Each runs out of process like any installed plugin; this
registry says how to start it. Names are kebab-case; parameters models forbid unknown keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from services.pricing.host import PluginHost
from services.pricing.manifest import PluginManifest, PluginRef, discover


class AwsPublicParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offers_dir: Path | None = Field(
        None, description="Directory of AWS bulk offer files (default: the trimmed set shipped)"
    )


class OpenCostParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="OpenCost API base URL, e.g. http://opencost.opencost:9003")
    window: str = Field("7d", description="Default allocation window")


@dataclass(frozen=True)
class Builtin:
    module: str
    params: type[BaseModel]
    description: str

    def ref(self, name: str, params: BaseModel) -> PluginRef:
        argv = ["{python}", "-m", self.module]
        for key, value in params.model_dump(exclude_none=True).items():
            argv += [f"--{key.replace('_', '-').removesuffix('-dir')}", str(value)]
        manifest = PluginManifest(
            name=name, version="builtin", command=argv, description=self.description
        )
        return PluginRef(manifest, Path(__file__).resolve().parents[3])


BUILTINS: dict[str, Builtin] = {
    "aws-public": Builtin(
        "services.pricing.plugins.aws_public",
        AwsPublicParams,
        "AWS public on-demand prices from bulk offer files (EC2, EBS, RDS, S3, ELB, NAT gateway)",
    ),
    "opencost": Builtin(
        "services.pricing.plugins.opencost",
        OpenCostParams,
        "Kubernetes costs from an OpenCost allocation API",
    ),
}


def builtin_refs(settings) -> list[PluginRef]:
    """Refs of the built-in plugins enabled in `settings.pricing_builtin_plugins`."""
    refs = []
    for name in [
        n.strip() for n in (settings.pricing_builtin_plugins or "").split(",") if n.strip()
    ]:
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise ValueError(f"unknown built-in plugin {name!r}; known: {', '.join(BUILTINS)}")
        params: AwsPublicParams | OpenCostParams
        if name == "aws-public":
            params = AwsPublicParams(offers_dir=settings.pricing_aws_offers_dir)
        else:
            if not settings.pricing_opencost_url:
                raise ValueError("the opencost plugin needs FINFOCUS_PRICING_OPENCOST_URL")
            params = OpenCostParams(url=settings.pricing_opencost_url)
        refs.append(builtin.ref(name, params))
    return refs


def make_host(settings, *, cache_file: Path | None = None) -> PluginHost:
    """The plugin host of `settings`: installed plugins (newest version of each), then the
    enabled built-ins. Plugins start on first use; `cache_file` keeps price answers between
    runs (the CLI's warm cache)."""
    installed, _problems = discover(settings.plugins_dir)
    return PluginHost(
        [*installed, *builtin_refs(settings)],
        timeout=settings.pricing_plugin_timeout_s,
        retries=settings.pricing_plugin_retries,
        ttl=settings.pricing_cache_ttl_s,
        log_dir=settings.logs_dir,
        cache_file=cache_file,
    )
