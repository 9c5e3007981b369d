"""Which language a page or an email is in, and the `flask translate` commands.

A signed-in user reads their own `locale`; a visitor reads the language they
picked with `?lang=` (kept in a cookie), else their browser's
Accept-Language. Emails never look at a request: the mail worker renders each
one inside `in_locale(recipient's locale)`.
"""

from contextlib import contextmanager
from functools import cache
from pathlib import Path

import click
from babel import Locale
from babel.messages.frontend import CommandLineInterface
from flask import current_app, request
from flask_babel import force_locale, get_locale
from flask_login import current_user

TRANSLATIONS = Path(__file__).parent / "translations"
CATALOG = TRANSLATIONS / "messages.pot"
EXTRACTION = TRANSLATIONS / "babel.cfg"
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


def N_(message):
    """Marks a message for extraction only: it is translated where it is shown (gettext).

    For module constants whose text must stay a plain string (compared, formatted later).
    """
    return message


def languages():
    return current_app.config["LANGUAGES"]


def language_choices():
    """(code, name) of each language, the name in that language: "English", "Русский"."""
    return [(code, own_name(code)) for code in languages()]


@cache
def own_name(code):
    name = Locale.parse(code).get_display_name(code)
    return name[:1].upper() + name[1:]  # CLDR writes "русский": a menu item is capitalised


def plural_samples():
    """{CLDR plural category: a number in it} for the page's language, e.g. one: 1, few: 2.

    Text that a script completes with a number (static/app.js, with the browser's
    Intl.PluralRules) is rendered once per category: ngettext(..., sample).
    """
    return samples_of(page_locale())


@cache
def samples_of(code):
    rule = Locale.parse(code).plural_form
    samples = {}
    for number in range(200):
        samples.setdefault(rule(number), number)
    return samples


def supported(code):
    """`code` if it is one of our languages, else None (the value came from outside)."""
    return code if code in languages() else None


def visitor_locale():
    """A visitor's language: their explicit choice, else what their browser asks for."""
    chosen = supported(request.args.get("lang")) or supported(request.cookies.get(LANGUAGE_COOKIE))
    return chosen or request.accept_languages.best_match(languages()) or languages()[0]


def select_locale():
    """Flask-Babel's locale selector: outside a request (the mail worker), the default."""
    if not request:
        return None
    if current_user.is_authenticated:
        return supported(current_user.locale) or languages()[0]
    return visitor_locale()


def page_locale():
    """The language of the page being served, as a code ("en", "ru")."""
    return str(get_locale())


def remember_choice(response):
    """An after_request hook: `?lang=ru` is remembered for the pages that follow.

    Every response but a static file says it varies with the language headers; a
    static file is the same in every language, and a shared cache keeps one copy.
    """
    chosen = supported(request.args.get("lang"))
    if chosen and request.cookies.get(LANGUAGE_COOKIE) != chosen:
        response.set_cookie(
            LANGUAGE_COOKIE,
            chosen,
            max_age=LANGUAGE_COOKIE_AGE,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
    if not is_static_file():
        response.vary.update(("Accept-Language", "Cookie"))
    return response


def is_static_file():
    """The app's static/ and Bootstrap's: endpoints named `static` (`bootstrap.static`)."""
    return (request.endpoint or "").rpartition(".")[2] == "static"


@contextmanager
def in_locale(locale):
    """Render in a stored locale (an email's recipient's), whatever the current request says."""
    with force_locale(supported(locale) or languages()[0]):
        yield


def register_commands(app):
    app.cli.add_command(translate)


def pybabel(*args):
    """Run Babel's `pybabel` command (installed with Flask-Babel) in this process."""
    CommandLineInterface().run(["pybabel", "-q", *args])


@click.group()
def translate():
    """Extract, update and compile the translation catalogs (microblog/translations/)."""


@translate.command()
def update():
    """Extract every marked string and merge it into each language's .po file.

    A string the code no longer says leaves the catalog (no `#~` obsolete entries,
    which the completeness test refuses); a new one arrives untranslated, never
    guessed from a similar one (fuzzy).
    """
    pybabel(*extract_arguments(CATALOG))
    pybabel(
        "update",
        "-i",
        str(CATALOG),
        "-d",
        str(TRANSLATIONS),
        "--no-fuzzy-matching",
        "--ignore-obsolete",
    )


def extract_arguments(output):
    """`pybabel extract` as the project runs it (also used by the completeness test)."""
    keywords = ("-k", "_l", "-k", "N_")  # lazy_gettext for forms; N_ marks without translating
    return (
        "extract",
        "-F",
        str(EXTRACTION),
        *keywords,
        "--sort-by-file",
        "--no-location",
        "--omit-header",
        "-o",
        str(output),
        str(TRANSLATIONS.parent),
    )


@translate.command()
@click.argument("language")
def init(language):
    """Start a catalog for a new language."""
    pybabel("init", "-i", str(CATALOG), "-d", str(TRANSLATIONS), "-l", language)


@translate.command()
def compile():
    """Compile the .po files into the .mo files the app reads (both are committed)."""
    pybabel("compile", "-d", str(TRANSLATIONS))
