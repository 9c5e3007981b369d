"""What the browser tests share: Debian's Chromium, the page sizes, and the errors a page shows.

Set MICROBLOG_DOCS_SCREENSHOT=1 to refresh the README's pictures (docs/*.png).
"""

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 900, "height": 600}
DOCS = Path(__file__).resolve().parents[2] / "docs"
WIDTHS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def watch_for_errors(tab, errors):
    def on_console(message):
        # "Failed to load resource" duplicates what on_response reports, with less detail.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def on_response(response):
        asset = response.request.resource_type != "document"
        if response.status >= 400 and asset:
            errors.append(f"{response.status} {response.url}")

    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("pageerror", lambda error: errors.append(str(error)))


def screenshot(page, name):
    """docs/<name>-light.png and -dark.png, when asked for (MICROBLOG_DOCS_SCREENSHOT=1)."""
    if not os.environ.get("MICROBLOG_DOCS_SCREENSHOT"):
        return
    from playwright.sync_api import expect

    DOCS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.reload()  # painted in the scheme from the start, no colour transitions caught midway
        expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
        page.screenshot(path=DOCS / f"{name}-{scheme}.png")
    page.emulate_media(color_scheme="light")
