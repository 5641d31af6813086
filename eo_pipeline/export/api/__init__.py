"""The export STAC API: embedded index, customers and entitlements, signed asset links.

- :mod:`~eo_pipeline.export.api.index`: the search index (SQLite + R*Tree) behind the
  :class:`~eo_pipeline.export.api.index.CatalogIndex` protocol;
- :mod:`~eo_pipeline.export.api.customers`: API keys (stored hashed) and entitlements;
- :mod:`~eo_pipeline.export.api.signing`: the private state folder, the server secret and
  HMAC-signed, expiring download links;
- :mod:`~eo_pipeline.export.api.client`: the stac-fastapi core client (entitlement-aware);
- :mod:`~eo_pipeline.export.api.server`: the app factory, downloads, ``serve_cli`` and
  ``demo_serve``.
"""

import logging as _logging

# stac-fastapi builds a throw-away ApiSettings() at import time and warns that its title and
# description are defaults; the app factory sets real ones, so that warning only misleads.
_logging.getLogger("stac_fastapi.types.config").setLevel(_logging.ERROR)
