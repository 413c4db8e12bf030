"""Rates as the settings write them: "30/m", "500/h", "10/5m" (requests per period).

Read by settings (to refuse a bad value at start) and by the API's write throttle.
Only the standard library: settings import it.
"""

import re

RATE = re.compile(r"(\d+)/(\d*)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_split(rate: str) -> tuple[int, int] | None:
    """(requests, period in seconds) of a rate, or None when it is not one (a zero period included)."""
    match = RATE.fullmatch(rate)
    if match is None or match.group(2) == "0":
        return None
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * UNIT_SECONDS[unit]
