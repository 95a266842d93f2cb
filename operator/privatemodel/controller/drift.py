"""Whether a live child still holds every field the operator set: a hand edit that loosens one
(a NetworkPolicy rule, a Service selector, a container's command) is then patched back.

Pure, on plain dicts. The API server adds defaults, status, cluster IPs and more; those fields are
not the operator's and are ignored. Lists of named items (containers, env, volumes, ports) match by
name, as a strategic merge patch merges them, so an item someone added does not count as drift:
the patch could not remove it, and the comparison would never settle. Other lists (NetworkPolicy
rules, tolerations, args) must match item by item, as a patch replaces them whole.
"""
from kubernetes.utils.quantity import parse_quantity

# Maps of quantities the API server rewrites in canonical form ("1000m" is stored as "1").
_QUANTITY_MAPS = frozenset({"limits", "requests"})


def covers(live, desired, quantities: bool = False) -> bool:
    """True when `live` has every field of `desired`, with the same value."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        for name, value in desired.items():
            if name not in live:
                # Empty and false values are left out of what the API server stores.
                if value in (None, False, "", {}, []):
                    continue
                return False
            if not covers(live[name], value, quantities=quantities or name in _QUANTITY_MAPS):
                return False
        return True
    if isinstance(desired, list):
        return _list_covers(live, desired)
    if quantities and live != desired:
        return _same_quantity(live, desired)
    return live == desired


def _list_covers(live, desired: list) -> bool:
    if not isinstance(live, list):
        return False
    if desired and all(isinstance(item, dict) and "name" in item for item in desired):
        by_name = {item.get("name"): item for item in live if isinstance(item, dict)}
        return all(item["name"] in by_name and covers(by_name[item["name"]], item) for item in desired)
    return len(live) == len(desired) and all(covers(have, want) for have, want in zip(live, desired))


def _same_quantity(live, desired) -> bool:
    try:
        return parse_quantity(live) == parse_quantity(desired)
    except (ValueError, TypeError):
        return False
