"""The Russian catalog keeps up with the code: every string translated, and compiled.

Later work must keep these green: a new string in a template, a form or an
email fails here until `flask --app microblog translate update` has added it
to the catalog, it has been translated, and `translate compile` has run.
"""

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from microblog import i18n

TRANSLATED = ["ru"]  # English is the source language


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """What the code marks for translation today, extracted as `translate update` does."""
    output = tmp_path_factory.mktemp("catalog") / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", *i18n.extract_arguments(output)])
    with output.open("rb") as file:
        return read_po(file)


def catalog(language, suffix="po"):
    path = i18n.TRANSLATIONS / language / "LC_MESSAGES" / f"messages.{suffix}"
    with path.open("rb") as file:
        return read_po(file) if suffix == "po" else read_mo(file)


def translations(messages):
    def frozen(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    return {frozen(message.id): frozen(message.string) for message in messages if message.id}


def test_the_code_marks_strings_for_translation(extracted):
    assert len([message for message in extracted if message.id]) > 1


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_string_of_the_code_is_in_the_catalog(extracted, language):
    known = catalog(language)
    missing = [message.id for message in extracted if message.id and message.id not in known]
    assert missing == [], "run `flask --app microblog translate update`, then translate"


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_catalog_holds_nothing_the_code_no_longer_says(extracted, language):
    known = catalog(language)
    stale = [message.id for message in known if message.id and message.id not in extracted]
    assert stale == []
    assert list(known.obsolete) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_string_is_translated_and_none_is_fuzzy(language):
    known = catalog(language)
    fuzzy = [message.id for message in known if message.id and message.fuzzy]
    untranslated = [
        message.id
        for message in known
        if message.id and not (all(message.string) if message.pluralizable else message.string)
    ]
    assert fuzzy == []
    assert untranslated == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_placeholder(language):
    """%(name)s placeholders and plural forms, as Babel's own checkers see them."""
    problems = [
        (message.id, [str(error) for error in errors])
        for message, errors in catalog(language).check()
    ]
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalog_matches_the_source(language):
    """The .mo files are committed: `translate compile` must have run after the last edit."""
    assert translations(catalog(language, "mo")) == translations(catalog(language))
