"""Publishing settings: providers, licence, terms, price lists, per-collection offers.

Read from the YAML given to ``eo-pipeline publish --config`` (keys = the dataclass fields)::

    catalog_title: KazEOSat products
    license: other
    license_href: https://operator.example/licence
    terms_href: https://operator.example/order-terms
    currency: USD
    per_km2: 10.0
    per_collection: 20000
    licence_days: 365
    providers:
      - {name: Operator, roles: [producer, licensor], url: https://operator.example}
      - {name: Processing centre, roles: [processor]}
      - {name: Export service, roles: [host]}
    collections:
      kazeosat2-l2: {title: KazEOSat-2 surface reflectance, per_km2: 4.5, public: false}

Default providers are neutral placeholders marked "(nominal)"; the licence and terms links
default to placeholder URLs under the reserved ``.invalid`` domain. Landsat and Sentinel
collections name their real producers (USGS, ESA) in place of the config's producers.
Every key is described in ``docs/sales-config.md``.

Examples
--------
>>> cfg = PublishConfig.from_dict({"currency": "EUR", "collections": {
...     "kazeosat2-l2": {"title": "KazEOSat-2 surface reflectance", "per_km2": 4.5}}})
>>> cfg.offer("kazeosat2-l2").pricing(cfg)["per_km2"], cfg.currency
(4.5, 'EUR')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from eo_pipeline.errors import CatalogError

__all__ = ["DEFAULT_PROVIDERS", "Offer", "Provider", "PublishConfig", "providers_for"]


@dataclass(frozen=True)
class Provider:
    """One organisation in a collection's ``providers``."""

    name: str
    """Organisation name."""
    roles: tuple[str, ...]
    """Any of ``producer``, ``licensor``, ``processor``, ``host``."""
    url: str | None = None
    """Home page."""
    description: str | None = None
    """What it does for this product."""

    def as_dict(self) -> dict[str, Any]:
        """The STAC provider object."""
        d: dict[str, Any] = {"name": self.name, "roles": list(self.roles)}
        if self.url:
            d["url"] = self.url
        if self.description:
            d["description"] = self.description
        return d


DEFAULT_PROVIDERS = (
    Provider(
        "KazEOSat operator (nominal)",
        ("producer", "licensor"),
        description="Placeholder for the satellite operator that acquires the scenes; "
        "set the real operator in the publish config.",
    ),
    Provider(
        "eo-pipeline processing centre (nominal)",
        ("processor",),
        description="Calibrates, masks and derives the products with eo-pipeline.",
    ),
    Provider(
        "eo-pipeline export service (nominal)",
        ("host",),
        description="Serves the catalogue and the downloads (STAC API with signed links).",
    ),
)


# Producers of the partner missions, used instead of the nominal operator when the config
# keeps the default providers.
KNOWN_PRODUCERS = {
    "landsat": Provider(
        "U.S. Geological Survey",
        ("producer", "licensor"),
        "https://www.usgs.gov/landsat-missions",
        "Landsat scenes (public domain)",
    ),
    "sentinel": Provider(
        "European Space Agency (Copernicus)",
        ("producer", "licensor"),
        "https://sentinels.copernicus.eu",
        "Copernicus Sentinel data (free and open licence)",
    ),
}


def providers_for(cfg: PublishConfig, platform: str) -> list[dict[str, Any]]:
    """The providers of a collection of ``platform`` as STAC provider objects.

    Landsat and Sentinel collections name their real producer (USGS, ESA) instead of the
    config's producers: the satellite operator of the config did not acquire them.
    """
    providers = list(cfg.providers)
    for prefix, producer in KNOWN_PRODUCERS.items():
        if platform.lower().startswith(prefix):
            others = [p for p in providers if "producer" not in p.roles]
            providers = [producer, *others]
    return [p.as_dict() for p in providers]


@dataclass(frozen=True)
class Offer:
    """How one product collection is sold (every field falls back to the config default)."""

    title: str | None = None
    """Collection title; default derived from platform and level."""
    description: str | None = None
    """Collection description (CommonMark)."""
    keywords: tuple[str, ...] = ()
    """Extra keywords, added to the config's."""
    per_km2: float | None = None
    """Price per km2 of footprint; default ``PublishConfig.per_km2``."""
    per_collection: float | None = None
    """Price of the whole collection; default ``PublishConfig.per_collection``."""
    minimum_km2: float | None = None
    """Smallest billable area per order; default ``PublishConfig.minimum_km2``."""
    licence_days: int | None = None
    """Licence length in days from publication (sets ``expires``); default the config's."""
    public: bool = False
    """Visible to anonymous API users (samples, open data)."""
    license: str | None = None
    """SPDX id or ``other`` for this collection; default ``PublishConfig.license``."""
    license_href: str | None = None
    """Licence document URL for this collection."""

    def pricing(self, cfg: PublishConfig) -> dict[str, Any]:
        """The ``eo_pipeline:pricing`` object of this offer."""
        d: dict[str, Any] = {
            "currency": cfg.currency,
            "per_km2": self.per_km2 if self.per_km2 is not None else cfg.per_km2,
            "per_collection": (
                self.per_collection if self.per_collection is not None else cfg.per_collection
            ),
        }
        minimum = self.minimum_km2 if self.minimum_km2 is not None else cfg.minimum_km2
        if minimum is not None:
            d["minimum_km2"] = minimum
        if cfg.price_notes:
            d["notes"] = cfg.price_notes
        return d


@dataclass(frozen=True)
class PublishConfig:
    """Catalog-wide publishing settings (``eo-pipeline publish --config FILE.yaml``)."""

    catalog_id: str = "eo-pipeline-export"
    """Id of the export root catalog."""
    catalog_title: str = "KazEOSat and partner products (export catalogue)"
    """Title of the export root catalog (also the API title)."""
    catalog_description: str = (
        "Calibrated, analysis-ready Earth-observation products over Kazakhstan from KazEOSat "
        "and partner missions, for sale to export customers."
    )
    """Description of the export root catalog."""
    providers: tuple[Provider, ...] = DEFAULT_PROVIDERS
    """Providers of every collection (producer, processor, host)."""
    license: str = "other"
    """SPDX licence id, or ``other`` for proprietary terms."""
    license_href: str = "https://kazeosat-operator.invalid/licence"
    """URL of the licence text (placeholder by default)."""
    terms_href: str = "https://kazeosat-operator.invalid/order-terms"
    """URL of the order terms (``terms-of-service`` link; placeholder by default)."""
    keywords: tuple[str, ...] = ("Kazakhstan", "Earth observation", "satellite imagery", "COG")
    """Keywords of every collection."""
    currency: str = "USD"
    """ISO 4217 currency of the price list."""
    per_km2: float = 10.0
    """Default price per km2."""
    per_collection: float = 20000.0
    """Default price of a whole collection."""
    minimum_km2: float | None = 25.0
    """Default smallest billable area per order."""
    price_notes: str | None = "Indicative list prices, excluding taxes."
    """Free text added to every price list."""
    licence_days: int | None = 365
    """Licence length from publication, in days (``expires``); ``None`` for perpetual."""
    collections: Mapping[str, Offer] = field(default_factory=dict)
    """Per-collection offers keyed by source collection id."""
    only: tuple[str, ...] = ()
    """Publish only these source collections (default: every one)."""
    exclude_roles: tuple[str, ...] = ("truth",)
    """Assets with any of these roles are not published (the simulator's ground truth)."""

    def offer(self, collection_id: str) -> Offer:
        """The offer for ``collection_id`` (the defaults when the config names none)."""
        return self.collections.get(collection_id, Offer())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "publish config") -> PublishConfig:
        """Build from a mapping (parsed YAML); unknown keys are errors naming the key.

        Raises
        ------
        CatalogError
            Unknown keys, or values of the wrong kind.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CatalogError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = dict(data)
        try:
            if "providers" in data:
                kwargs["providers"] = tuple(
                    Provider(**{**p, "roles": tuple(p.get("roles", ()))}) for p in data["providers"]
                )
            offer_keys = {f.name for f in fields(Offer)}
            offers = {}
            for cid, o in (data.get("collections") or {}).items():
                bad = sorted(set(o or {}) - offer_keys)
                if bad:
                    raise CatalogError(
                        f"{where}: collections.{cid}: unknown key(s) {bad}; known: {sorted(offer_keys)}"
                    )
                o = dict(o or {})
                o["keywords"] = tuple(o.get("keywords", ()))
                offers[cid] = Offer(**o)
            kwargs["collections"] = offers
            for key in ("keywords", "only", "exclude_roles"):
                if key in data:
                    kwargs[key] = tuple(data[key])
            cfg = cls(**kwargs)
        except TypeError as err:
            raise CatalogError(f"{where}: {err}") from None
        for p in cfg.providers:
            bad_roles = set(p.roles) - {"producer", "licensor", "processor", "host"}
            if bad_roles:
                raise CatalogError(
                    f"{where}: provider {p.name!r}: unknown roles {sorted(bad_roles)}"
                )
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> PublishConfig:
        """Read a YAML config file (same keys as the dataclass fields)."""
        try:
            raw = Path(path).read_bytes()
            if len(raw) > 1 << 20:
                raise CatalogError(f"{path}: larger than 1 MiB; is it really a publish config?")
            data = yaml.safe_load(raw.decode("utf-8")) or {}
        except UnicodeDecodeError as err:
            raise CatalogError(
                f"{path}: not UTF-8 text (byte offset {err.start}); save the config as UTF-8"
            ) from None
        except (OSError, yaml.YAMLError) as err:
            raise CatalogError(f"{path}: cannot read publish config: {err}") from None
        if not isinstance(data, dict):
            raise CatalogError(f"{path}: publish config must be a YAML mapping")
        return cls.from_dict(data, where=str(path))
