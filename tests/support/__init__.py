"""What the tests share and no test module owns: servers, harnesses, people, checks.

`smtp` is a real SMTP server (and a raw one that misbehaves), `gunicorn` the
production server as a process, `visitor` one person's cookie jar over HTTP,
`browser` what the Chromium tests share, `auth` what a person does with the
account forms through the test client, `app` how each test's app is built,
`outbox`, `workers`, `languages` and `posts` read and set the state the tests
assert on, `untranslated` finds English left on a Russian page, `ports` a free
port. Fixtures stay in `tests/conftest.py`; these modules are plain code, so
the benchmark scripts can use them too.
"""
