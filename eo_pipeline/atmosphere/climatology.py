"""Water vapour and ozone when the user gives none: 6S's own standard atmospheres.

The rule is 6S's (and Py6S's ``AtmosProfile.FromLatitudeAndDate``): tropical within 15 degrees
of the equator; mid-latitude summer/winter up to 50 degrees; sub-arctic summer/winter beyond
(summer = April-September in the north, October-March in the south). The columns are those
of 6S's profiles (McClatchey et al. 1971 as tabulated in 6S).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "Climatology", "climatology"]

PROFILES: dict[str, tuple[float, float]] = {
    "tropical": (4.12, 0.247),
    "midlatitude summer": (2.93, 0.319),
    "midlatitude winter": (0.853, 0.395),
    "subarctic summer": (2.10, 0.480),
    "subarctic winter": (0.419, 0.480),
}
"""Profile -> (water vapour g cm-2, ozone atm-cm)."""


@dataclass(frozen=True)
class Climatology:
    """Gas columns of a standard atmosphere."""

    profile: str
    """6S profile name."""
    water: float
    """Water vapour column (g cm-2)."""
    ozone: float
    """Ozone column (atm-cm)."""


def climatology(latitude: float, month: int) -> Climatology:
    """The standard atmosphere of a latitude (degrees) and month (1-12).

    >>> climatology(51.2, 1).profile, climatology(12.3, 12).water
    ('subarctic winter', 4.12)
    """
    lat = abs(float(latitude))
    summer = month in range(4, 10) if latitude >= 0 else month not in range(4, 10)
    if lat < 15:
        name = "tropical"
    elif lat < 50:
        name = "midlatitude summer" if summer else "midlatitude winter"
    else:
        name = "subarctic summer" if summer else "subarctic winter"
    water, ozone = PROFILES[name]
    return Climatology(name, water, ozone)
