"""Naming a browser from its User-Agent: "Firefox on Linux", what a person recognises.

A session record keeps the English description; pages and emails say it in
their own language.
"""

import re

from flask_babel import gettext

BROWSERS = [  # order matters: Edge and Opera say "Chrome", Chrome says "Safari"
    ("Edge", r"Edg(?:e|A|iOS)?/"),
    ("Opera", r"OPR/|Opera"),
    ("Samsung Internet", r"SamsungBrowser/"),
    ("Firefox", r"Firefox/|FxiOS/"),
    ("Chrome", r"Chrome/|CriOS/|HeadlessChrome/"),
    ("Safari", r"Safari/"),
    ("curl", r"^curl/"),
    ("Python", r"python-requests|python-urllib|Werkzeug"),
]
SYSTEMS = [  # Android says "Linux", iOS says "Mac OS X"
    ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"),
    ("Windows", r"Windows"),
    ("macOS", r"Macintosh|Mac OS X"),
    ("ChromeOS", r"CrOS"),
    ("Linux", r"Linux|X11"),
]


def recognise_browser(user_agent):
    """The names of the browser and of the system in a User-Agent; None for one not known."""
    user_agent = (user_agent or "")[:512]
    browser = next((name for name, rx in BROWSERS if re.search(rx, user_agent)), None)
    system = next((name for name, rx in SYSTEMS if re.search(rx, user_agent)), None)
    return browser, system


def name_browser(browser, system):
    """ "Firefox on Linux", "Firefox на Linux": the names, in the current language."""
    if browser and system:
        return gettext("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or system or gettext("Unknown device")


def describe_browser(user_agent):
    """ "Firefox on Linux": what a person recognises on the devices page, nothing more."""
    return name_browser(*recognise_browser(user_agent))


def localise_description(description):
    """A stored description ("Firefox on Linux") in the page's language; names stay as they are.

    The record keeps the English words (one row, read by pages in any language).
    """
    browser, on, system = description.partition(" on ")
    if on:
        return name_browser(browser, system)
    return name_browser(None, None) if description == "Unknown device" else description
