"""Which hosts are this machine: the one exception to "https only" (settings, file URLs).

Why one function: the API URL check and the file-URL check must agree on what loopback is,
or a URL accepted by one would be refused by the other.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1); never a resolved name."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
