"""Keeping personal data out of logs."""


def mask_email(address):
    """j***@example.com: enough to tell accounts apart in a log, not to harvest them."""
    local, _, domain = (address or "").rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"
