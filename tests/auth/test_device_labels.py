"""Any user agent, or none, signs in; the devices page names what it recognises.

The label is for a person scanning the list ("Firefox on Linux"): the parts
found, and one same label for every agent with neither part.
"""

import sqlalchemy as sa

from microblog.auth.sessions import SessionRecord
from microblog.extensions import db
from support.auth import PASSWORD

FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def labels_after_signing_in_with(app, *user_agents):
    """The device label of one sign-in per user agent, in order."""
    for user_agent in user_agents:
        signed_in = app.test_client().post(
            "/auth/login",
            data={"username": "susan", "password": PASSWORD},
            headers={"User-Agent": user_agent},
        )
        assert signed_in.headers["Location"] == "/index"
    with app.app_context():
        return list(db.session.scalars(sa.select(SessionRecord.device).order_by(SessionRecord.id)))


def test_any_user_agent_or_none_signs_in_and_is_labelled(app, make_user):
    make_user("susan")
    both, browser, system, neither, empty = labels_after_signing_in_with(
        app, FIREFOX_ON_LINUX, "Firefox/133.0", "SomeApp (Linux)", "SomeBot/1.0", ""
    )
    assert both.startswith("Firefox ") and both.endswith(" Linux")
    assert (browser, system) == ("Firefox", "Linux")
    assert neither == empty
    assert neither and "None" not in neither and "SomeBot" not in neither
