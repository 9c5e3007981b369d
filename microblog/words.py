"""How text becomes search terms: its language, its words, and their Snowball stems.

One analysis for both databases: a post is indexed as the string of its
stemmed words, computed here in Python, and a query is stemmed the same way.
PostgreSQL and SQLite then only match whole terms, so the same data gives
the same results on both, and no user input ever reaches a query syntax
(the terms are letters and digits only, and quoted besides).

Each word is stemmed by its own script: Cyrillic words with the Russian
stemmer, Latin ones with the English stemmer, anything else kept as it is
(lower-cased). A query needs no language then, and a post that mixes
"I read книги" finds both words. The post's language (detect_language) is
stored for readers (the `lang` of its text), not for the stems.
"""

import re
import threading

import Stemmer
from markupsafe import Markup, escape

# Letters and digits (no underscore: both databases' tokenizers split on it).
WORD = re.compile(r"[^\W_]+")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f]")
MAX_WORD_LENGTH = 64  # longer "words" (a pasted hash, a URL's path) are kept cut to this
MAX_QUERY_TERMS = 8  # a query of more words than this matches on its first eight

_stemmers = threading.local()  # a PyStemmer object is not safe to share between threads


def _stemmer(language):
    stemmers = _stemmers.__dict__
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language)
    return stemmers[language]


def stem(word):
    """The term a word is indexed and searched under."""
    word = word.lower().replace("ё", "е")[:MAX_WORD_LENGTH]
    if CYRILLIC.search(word):
        return _stemmer("russian").stemWord(word)
    if LATIN.search(word):
        return _stemmer("english").stemWord(word)
    return word


def terms(text):
    """The stems of every word of `text`, in order, as the index stores them."""
    return " ".join(stem(word) for word in WORD.findall(text or ""))


def query_terms(query):
    """The distinct stems of a query, in order, at most MAX_QUERY_TERMS."""
    found = []
    for word in WORD.findall(query or ""):
        term = stem(word)
        if term not in found:
            found.append(term)
    return found[:MAX_QUERY_TERMS]


def detect_language(text, fallback):
    """'ru' when most letters are Cyrillic, 'en' when most are Latin, else `fallback`.

    A rule of scripts, not a statistical detector: the site speaks English and
    Russian, which the script tells apart for certain, in microseconds, for
    texts of one word; libraries such as langdetect take milliseconds per post
    and guess wrong on short ones. Texts with no letters of either (emoji,
    numbers, another script) take the author's language.
    """
    cyrillic = len(CYRILLIC.findall(text or ""))
    latin = len(LATIN.findall(text or ""))
    if cyrillic > latin:
        return "ru"
    if latin > cyrillic:
        return "en"
    return fallback


def highlight(text, wanted):
    """`text` escaped, with each word whose stem is in `wanted` in a <mark>."""
    wanted = set(wanted)
    parts, last = [], 0
    for match in WORD.finditer(text):
        if stem(match.group()) in wanted:
            parts.append(escape(text[last : match.start()]))
            parts.append(Markup("<mark>%s</mark>") % match.group())
            last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)
