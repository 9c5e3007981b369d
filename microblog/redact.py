"""Keeping personal data out of logs and pages."""

import ipaddress


def mask_email(address):
    """j***@example.com: enough to tell accounts apart in a log, not to harvest them."""
    local, _, domain = (address or "").rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_address(address):
    """203.0.113.x, 2001:db8:1::/48: the network someone signed in from, not the host."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return ".".join([*str(ip).split(".")[:3], "x"])
    return str(ipaddress.ip_network(f"{ip}/48", strict=False))
