"""What the tests share and no test module owns: servers, harnesses, people.

`smtp` is a real SMTP server, `gunicorn` the production server as a process,
`visitor` one person's cookie jar over HTTP, `auth` what a person does with
the account forms through the test client, `app` how each test's app is
built, `untranslated` the check that nothing English is left on a Russian
page. Fixtures stay in `tests/conftest.py`; these modules are plain code, so
the benchmark scripts can use them too.
"""
