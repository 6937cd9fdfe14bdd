"""Which customers write from a messaging platform: `line:U…` from LINE, `fb:P…` from Messenger."""
from __future__ import annotations

# platform -> (customer id prefix, the conversation's metadata.source)
PLATFORMS = {"line": ("line:", "line"), "messenger": ("fb:", "facebook")}


def platform_of(customer_id: str) -> tuple[str, str] | None:
    """(platform, the platform's own user id) of a customer who writes from one, else None."""
    for platform, (prefix, _source) in PLATFORMS.items():
        if customer_id.startswith(prefix):
            return platform, customer_id[len(prefix):]
    return None
