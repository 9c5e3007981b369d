"""One person's browser over HTTP, without the browser: a cookie jar and the forms' tokens."""

import re
from dataclasses import dataclass
from http.cookiejar import CookieJar
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPErrorProcessor, Request, build_opener

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')


@dataclass
class Page:
    status: int
    headers: object
    text: str

    @property
    def location(self):
        return self.headers.get("Location")

    def csrf_token(self):
        """The form's token, as a browser would send it back."""
        tag = CSRF_INPUT.search(self.text)
        assert tag, f"no CSRF token on the page ({self.status})"
        return re.search(r'value="([^"]+)"', tag.group(0)).group(1)


class KeepEveryResponse(HTTPErrorProcessor):
    """Hand back redirects and errors as they are: the test asserts on them."""

    def http_response(self, request, response):
        return response


class Visitor:
    """One person's cookie jar; every request is a fresh connection (`Connection: close`)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()), KeepEveryResponse())

    def request(self, path, data=None):
        body = urlencode(data).encode() if data is not None else None
        with self.opener.open(Request(self.base_url + path, data=body), timeout=10) as response:
            return Page(response.status, response.headers, response.read().decode())

    def get(self, path):
        return self.request(path)

    def submit(self, path, **fields):
        """Fill in the form at `path` and post it, CSRF token included."""
        token = self.get(path).csrf_token()
        return self.request(path, {"csrf_token": token, **fields})
