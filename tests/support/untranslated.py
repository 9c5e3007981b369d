"""The check that keeps pages and emails whole in Russian: no English of the catalog left.

Render the same page (or email) in English and in Russian; every English text
of the catalog that the English one shows must be gone from the Russian one.
A string someone forgot to translate, or to mark for translation, shows up here.
"""

import re
from html import unescape
from html.parser import HTMLParser

from babel.messages.pofile import read_po

from microblog import i18n

SHOWN_ATTRIBUTES = re.compile(r"title|aria-label|alt|placeholder|data-confirm|data-(left|over)-\w+")


class VisibleText(HTMLParser):
    """What a reader meets: text, and the attributes a browser or a script shows or reads out."""

    def __init__(self):
        super().__init__()
        self.parts, self.attributes, self.hidden = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self.hidden += 1
        for name, value in attrs.items():
            shown = SHOWN_ATTRIBUTES.fullmatch(name) or (
                name == "value" and attrs.get("type") in ("submit", "button")
            )
            if shown and value:
                self.attributes.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def visible(html):
    parser = VisibleText()
    parser.feed(html)
    text = "".join(parser.parts) + " " + " ".join(parser.attributes)
    return re.sub(r"[\s\u00a0\u202f]+", " ", unescape(text))


def english_fragments():
    """The English words of the catalog: each msgid cut at its placeholders and tags."""
    with (i18n.TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as file:
        catalog = read_po(file)
    fragments = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if message.pluralizable else (message.id,)
        russian = " ".join(message.string if message.pluralizable else (message.string,))
        for msgid in ids:
            for fragment in re.split(r"%\(\w+\)s|<[^>]+>", msgid):
                fragment = fragment.strip(" .,:;!?")
                if len(re.findall(r"[A-Za-z]", fragment)) >= 3 and fragment not in russian:
                    fragments.add(fragment)
    return fragments


FRAGMENTS = english_fragments()


def catalog_english_in(text):
    return {f for f in FRAGMENTS if re.search(rf"(?<![A-Za-z]){re.escape(f)}(?![A-Za-z])", text)}


def assert_nothing_leaks(english, russian):
    shown = catalog_english_in(english)
    assert shown, "the English page shows none of the catalog: is the test still looking?"
    assert catalog_english_in(russian) == set()
