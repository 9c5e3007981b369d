"""Authors edit and delete their own posts; nobody else can."""

import pytest
import sqlalchemy as sa

from microblog.extensions import db
from microblog.models import Post, TimelineEntry


@pytest.fixture
def post_id(app, client, make_user, auth):
    """susan, signed in, with one post."""
    make_user("susan")
    auth.login()
    client.post("/index", data={"post": "First draft"})
    with app.app_context():
        return db.session.scalar(sa.select(Post.id))


def stored(app, post_id):
    with app.app_context():
        return db.session.get(Post, post_id)


def test_an_author_edits_a_post_and_it_says_edited(app, client, post_id):
    form = client.get(f"/post/{post_id}/edit")
    assert form.status_code == 200 and "First draft" in form.text
    response = client.post(f"/post/{post_id}/edit", data={"post": "Second draft"})
    assert response.headers["Location"] == "/user/susan"
    post = stored(app, post_id)
    assert post.body == "Second draft" and post.edited_at is not None
    profile = client.get("/user/susan").text
    assert "Second draft" in profile and ">edited</span>" in profile


def test_saving_an_unchanged_post_does_not_mark_it_edited(app, client, post_id):
    client.post(f"/post/{post_id}/edit", data={"post": "First draft"})
    assert stored(app, post_id).edited_at is None
    assert ">edited</span>" not in client.get("/user/susan").text


def test_an_edit_past_the_limit_is_a_form_error_and_keeps_the_post(app, client, post_id):
    response = client.post(f"/post/{post_id}/edit", data={"post": "z" * 300})
    assert response.status_code == 200
    assert "Posts can be up to 280 characters long; this one has 300." in response.text
    assert stored(app, post_id).body == "First draft"


def test_an_author_deletes_a_post_and_it_leaves_every_timeline(app, client, post_id):
    response = client.post(f"/post/{post_id}/delete", data={"next": "/user/susan"})
    assert response.headers["Location"] == "/user/susan"
    assert stored(app, post_id) is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TimelineEntry)) == 0
    assert "First draft" not in client.get("/index").text


def test_delete_goes_back_only_to_a_page_of_this_site(client, post_id):
    response = client.post(f"/post/{post_id}/delete", data={"next": "//evil.example/"})
    assert response.headers["Location"] == "/index"


def test_delete_needs_a_post_request(client, post_id):
    assert client.get(f"/post/{post_id}/delete").status_code == 405


@pytest.mark.parametrize("action", ["edit", "delete"])
def test_someone_else_gets_a_403_and_the_post_stays(app, client, make_user, auth, post_id, action):
    make_user("mallory")
    auth.logout()
    auth.login("mallory")
    assert client.post(f"/post/{post_id}/{action}", data={"post": "pwned"}).status_code == 403
    assert stored(app, post_id).body == "First draft"


@pytest.mark.parametrize("action", ["edit", "delete"])
def test_a_visitor_is_sent_to_sign_in(app, client, auth, post_id, action):
    auth.logout()
    response = client.post(f"/post/{post_id}/{action}", data={"post": "pwned"})
    assert response.headers["Location"].startswith("/auth/login?next=")
    assert stored(app, post_id).body == "First draft"


@pytest.mark.parametrize("missing", ["999", "99999999999999999999999"])
@pytest.mark.parametrize("action", ["edit", "delete"])
def test_an_unknown_post_is_a_404(client, post_id, missing, action):
    assert client.post(f"/post/{missing}/{action}").status_code == 404


def test_delete_without_the_csrf_token_deletes_nothing(app, client, post_id):
    app.config["WTF_CSRF_ENABLED"] = True  # read per request: on from here
    assert client.post(f"/post/{post_id}/delete").status_code == 400
    assert stored(app, post_id) is not None


def test_only_the_author_sees_edit_and_delete(client, make_user, auth, post_id):
    assert f'action="/post/{post_id}/delete"' in client.get("/user/susan").text
    auth.logout()
    assert f'action="/post/{post_id}/delete"' not in client.get("/user/susan").text
    assert "First draft" in client.get("/user/susan").text
