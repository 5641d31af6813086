"""The export STAC API: embedded index, customers and entitlements, signed asset links.

- :mod:`~eo_pipeline.export.api.index`: the search index (SQLite + R*Tree) behind the
  :class:`~eo_pipeline.export.api.index.CatalogIndex` protocol;
- :mod:`~eo_pipeline.export.api.customers`: API keys (stored hashed) and entitlements;
- :mod:`~eo_pipeline.export.api.signing`: the private state folder, the server secret and
  HMAC-signed, expiring download links;
- :mod:`~eo_pipeline.export.api.client`: the stac-fastapi core client (entitlement-aware);
- :mod:`~eo_pipeline.export.api.server`: the app factory, downloads, ``serve_cli`` and
  ``demo_serve``.

The server and its core client need the web stack of the ``export`` extra (stac-fastapi,
uvicorn, httpx: ``pip install 'eo-pipeline[export]'``); the index, customers and signing
(used by :func:`eo_pipeline.publish`) need none of it. Entry points call
:func:`require_web_stack` first, so a missing extra is one clear error.
"""

import logging as _logging

from eo_pipeline.errors import DependencyError as _DependencyError

WEB_STACK = ("fastapi", "stac_fastapi.api", "stac_fastapi.extensions", "uvicorn", "httpx", "cql2")
"""Modules of the ``export`` extra the server needs (cql2 parses its CQL2 filters)."""


def require_web_stack(what: str = "the export STAC API server") -> None:
    """Raise :class:`~eo_pipeline.errors.DependencyError` unless the ``export`` extra is
    installed (``what`` names the feature in the message)."""
    import importlib

    missing = []
    for name in WEB_STACK:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name.split(".")[0].replace("_", "-"))
    if missing:
        raise _DependencyError(
            f"{what} needs the web stack of the `export` extra ({', '.join(sorted(set(missing)))} "
            "not installed): pip install 'eo-pipeline[export]'"
        )


# stac-fastapi builds a throw-away ApiSettings() at import time and warns that its title and
# description are defaults; the app factory sets real ones, so that warning only misleads.
_logging.getLogger("stac_fastapi.types.config").setLevel(_logging.ERROR)
