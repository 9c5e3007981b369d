"""Which language an account chose, and which one a page is in."""

import re

import sqlalchemy as sa

from microblog.extensions import db
from microblog.models import User

HTML_LANG = re.compile(r'<html lang="([^"]+)"')


def set_locale(app, username, locale):
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == username).values(locale=locale))
        db.session.commit()


def stored_locale(app, username):
    with app.app_context():
        return db.session.scalar(sa.select(User.locale).where(User.username == username))


def language_of(response):
    assert response.status_code == 200, response.status_code
    return HTML_LANG.search(response.text).group(1)
