"""Private server state and HMAC-signed, expiring download links.

The export catalog folder is published as-is (a static STAC catalog), so everything private
lives in one hidden folder inside it, ``<catalog>/.eo-pipeline/`` (mode 0700), which no STAC
link points to and the download route never serves:

- ``signing.key``: the server secret (32 random bytes, hex, mode 0600), unless the
  ``EO_PIPELINE_SIGNING_SECRET`` environment variable provides one (any string of at least
  32 characters; several server processes behind a load balancer must share it);
- ``customers.sqlite``: customers, hashed API keys, entitlements;
- ``index.sqlite``: the search index (rebuilt from the static catalog at any time);
- ``access.log``: who read what and when (JSON lines).

A signed link is ``/download/<path>?customer=<name>&expires=<unix seconds>&signature=<hex>``
with ``signature = HMAC-SHA256(secret, "<path>\\n<customer>\\n<expires>")``, ``<path>`` being the
asset's POSIX path relative to the catalog root. The link is bearer-like (GDAL's ``/vsicurl/``
can read it with no headers) but bound to one file, one customer and an expiry time; the server
also re-checks at download time that the customer is still active and entitled.

Examples
--------
>>> signer = LinkSigner(b"0" * 32)
>>> q = signer.sign("c/i/B1.tif", "acme", expires=2_000_000_000)
>>> signer.verify("c/i/B1.tif", q["customer"], q["expires"], q["signature"], now=1_900_000_000)
True
>>> signer.verify("c/i/B2.tif", q["customer"], q["expires"], q["signature"], now=1_900_000_000)
False
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from eo_pipeline.errors import CatalogError

__all__ = ["STATE_DIRNAME", "LinkSigner", "load_secret", "state_dir"]

STATE_DIRNAME = ".eo-pipeline"
"""Name of the private state folder inside an export catalog."""

SECRET_ENV = "EO_PIPELINE_SIGNING_SECRET"
_SECRET_FILE = "signing.key"


def state_dir(catalog_dir: str | os.PathLike[str], *, create: bool = True) -> Path:
    """The private state folder of an export catalog (created with mode 0700 when asked).

    Examples
    --------
    >>> import tempfile
    >>> state_dir(tempfile.mkdtemp()).name
    '.eo-pipeline'
    """
    path = Path(catalog_dir) / STATE_DIRNAME
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def load_secret(catalog_dir: str | os.PathLike[str]) -> bytes:
    """The server's signing secret: ``$EO_PIPELINE_SIGNING_SECRET`` or the state folder's key.

    The key file is created on first use with 32 random bytes and mode 0600; a key file that
    group or others can read is refused (a leaked secret lets anyone forge download links).

    Raises
    ------
    CatalogError
        When the environment secret is shorter than 32 characters or the key file is
        readable by others (the message says how to fix it).
    """
    env = os.environ.get(SECRET_ENV)
    if env is not None:
        if len(env) < 32:
            raise CatalogError(
                f"{SECRET_ENV} is {len(env)} characters long; use at least 32 random characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return env.encode()
    path = state_dir(catalog_dir) / _SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise CatalogError(
                f"{path}: signing secret is readable by group/others (mode {mode:o}); "
                f"run `chmod 600 {path}`"
            ) from None
        text = path.read_text().strip()
        if len(text) < 32:
            raise CatalogError(
                f"{path}: signing secret is too short; delete it to regenerate"
            ) from None
        return text.encode()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class LinkSigner:
    """Signs and verifies download links (HMAC-SHA256 over path, customer and expiry)."""

    secret: bytes
    """The server secret (see :func:`load_secret`)."""

    def _mac(self, path: str, customer: str, expires: int) -> str:
        message = f"{path}\n{customer}\n{int(expires)}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, customer: str, expires: int) -> dict[str, str]:
        """Query parameters of a link to ``path`` for ``customer`` valid until ``expires``.

        Examples
        --------
        >>> sorted(LinkSigner(b"k" * 32).sign("a.tif", "acme", 10))
        ['customer', 'expires', 'signature']
        """
        return {
            "customer": customer,
            "expires": str(int(expires)),
            "signature": self._mac(path, customer, expires),
        }

    def verify(
        self,
        path: str,
        customer: str,
        expires: str | int,
        signature: str,
        *,
        now: float | None = None,
    ) -> bool:
        """True when ``signature`` matches and ``expires`` lies in the future.

        The comparison is constant-time; malformed ``expires`` values are simply invalid.
        """
        try:
            expires_at = int(expires)
        except (TypeError, ValueError):
            return False
        expected = self._mac(path, customer, expires_at)
        if not hmac.compare_digest(expected, str(signature)):
            return False
        return expires_at > (time.time() if now is None else now)
