"""Private server state and HMAC-signed, expiring download links.

The export catalog folder is published as-is (a static STAC catalog), so nothing private lives
inside it. The service's state is a sibling folder, ``<parent>/<catalog name>.eo-pipeline/``
(for ``out/export``: ``out/export.eo-pipeline/``, mode 0700), or the folder named by the
``EO_PIPELINE_STATE_DIR`` environment variable. A catalog served by an older version kept it
inside, as ``<catalog>/.eo-pipeline/``; :func:`state_dir` moves such a folder out on first use.
It holds:

- ``signing.key``: the server secret (32 random bytes, hex, mode 0600), unless the
  ``EO_PIPELINE_SIGNING_SECRET`` environment variable provides one (any string of at least
  32 characters; several server hosts behind a load balancer must share it; the worker
  processes of one ``serve --workers N`` share the file);
- ``customers.sqlite``: customers, hashed API keys, entitlements;
- ``index.sqlite``: the search index (rebuilt from the static catalog at any time);
- ``access.log``: who read what and when (JSON lines; the sales record).

A signed link is ``/download/<path>?customer=<name>&key=<key id>&expires=<unix seconds>&
signature=<hex>`` with ``signature = HMAC-SHA256(secret, "<path>\\n<customer>\\n<key id>\\n
<expires>")``, ``<path>`` being the asset's POSIX path relative to the catalog root and
``<key id>`` naming the API key the link was issued under (a prefix of the key's SHA-256, see
:attr:`~eo_pipeline.export.api.customers.Customer.key_id`). The link is bearer-like (GDAL's
``/vsicurl/`` can read it with no headers) but bound to one file, one key and an expiry time;
the server re-checks at download time that this very key is still the customer's active key
and that the customer is still entitled, so revoking or re-issuing a key kills every link
issued under the old one.

Examples
--------
>>> signer = LinkSigner(b"0" * 32)
>>> q = signer.sign("c/i/B1.tif", "acme", "k1", expires=2_000_000_000)
>>> signer.verify("c/i/B1.tif", q["customer"], q["key"], q["expires"], q["signature"],
...               now=1_900_000_000)
True
>>> signer.verify("c/i/B1.tif", q["customer"], "k2", q["expires"], q["signature"],
...               now=1_900_000_000)
False
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eo_pipeline.errors import CatalogError

__all__ = ["STATE_DIRNAME", "STATE_ENV", "LinkSigner", "load_secret", "state_dir"]

STATE_DIRNAME = ".eo-pipeline"
"""Name of the legacy private state folder inside an export catalog (never served)."""
STATE_SUFFIX = ".eo-pipeline"
"""The state folder is the catalog's sibling ``<catalog name><STATE_SUFFIX>``."""
STATE_ENV = "EO_PIPELINE_STATE_DIR"
"""Environment variable naming the state folder explicitly."""

SECRET_ENV = "EO_PIPELINE_SIGNING_SECRET"
_SECRET_FILE = "signing.key"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _default_state(catalog_dir: Path) -> Path:
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env)
    root = catalog_dir.resolve()
    return root.with_name(f"{root.name}{STATE_SUFFIX}")


def state_dir(catalog_dir: str | os.PathLike[str], *, create: bool = True) -> Path:
    """The private state folder of an export catalog (outside it; created 0700 when asked).

    A legacy ``<catalog>/.eo-pipeline/`` folder is moved to the new place when that does
    not exist yet (one rename: same file system).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "export"
    >>> state_dir(d).name
    'export.eo-pipeline'
    """
    catalog = Path(catalog_dir)
    path = _default_state(catalog)
    legacy = catalog / STATE_DIRNAME
    if create:
        if legacy.is_dir() and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                os.replace(legacy, path)
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
    if not path.exists():
        # write a complete key under a temporary name, then link it into place: a concurrent
        # process (``serve --workers``) either wins the link or reads the winner's full key
        fd, tmp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            os.chmod(tmp, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CatalogError(
            f"{path}: signing secret is readable by group/others (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    text = path.read_text().strip()
    if len(text) < 32:
        raise CatalogError(f"{path}: signing secret is too short; delete it to regenerate")
    return text.encode()


@dataclass(frozen=True)
class LinkSigner:
    """Signs and verifies download links (HMAC-SHA256 over path, customer and expiry)."""

    secret: bytes
    """The server secret (see :func:`load_secret`)."""

    def _mac(self, path: str, customer: str, key_id: str, expires: int) -> str:
        message = f"{path}\n{customer}\n{key_id}\n{int(expires)}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, customer: str, key_id: str, expires: int) -> dict[str, str]:
        """Query parameters of a link to ``path`` for ``customer``'s key ``key_id``.

        Examples
        --------
        >>> sorted(LinkSigner(b"k" * 32).sign("a.tif", "acme", "k1", 10))
        ['customer', 'expires', 'key', 'signature']
        """
        return {
            "customer": customer,
            "key": key_id,
            "expires": str(int(expires)),
            "signature": self._mac(path, customer, key_id, expires),
        }

    def verify(
        self,
        path: str,
        customer: str,
        key_id: str,
        expires: str | int,
        signature: str,
        *,
        now: float | None = None,
    ) -> bool:
        """True when ``signature`` matches and ``expires`` lies in the future.

        The comparison is constant-time on ASCII bytes; a signature that is not 64 hex
        digits, or a malformed ``expires``, is simply invalid (never an exception).
        """
        try:
            expires_at = int(expires)
        except (TypeError, ValueError, OverflowError):
            return False
        if not (isinstance(signature, str) and _HEX64.fullmatch(signature)):
            return False
        expected = self._mac(path, customer, key_id, expires_at)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return False
        return expires_at > (time.time() if now is None else now)
