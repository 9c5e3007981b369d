"""Follower and following lists, linked from the counts on a profile."""

import re

import pytest

from support.posts import pager_links


def people(html):
    return re.findall(r'<a class="fw-semibold" href="/user/([^"]+)">', html)


@pytest.fixture
def crowd(client, make_user, auth):
    """john follows susan and mary; five people follow john."""
    make_user("john")
    for name in ("susan", "mary"):
        make_user(name)
    fans = [f"fan{n}" for n in range(5)]
    for fan in fans:
        make_user(fan)
        auth.login(fan)
        client.post("/follow/john")
        auth.logout()
    auth.login("john")
    client.post("/follow/susan")
    client.post("/follow/mary")
    auth.logout()
    return fans


def test_the_counts_on_a_profile_link_to_the_lists(client, crowd):
    profile = client.get("/user/john").text
    assert '<a class="followers" href="/user/john/followers">5 followers</a>' in profile
    assert '<a class="following" href="/user/john/following">2 following</a>' in profile


def test_the_following_list_names_whom_they_follow(client, crowd):
    assert sorted(people(client.get("/user/john/following").text)) == ["mary", "susan"]


@pytest.mark.settings(PEOPLE_PER_PAGE=2)
def test_the_followers_list_pages_through_everyone_once(client, crowd):
    seen, url = [], "/user/john/followers"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += people(page.text)
        url, _ = pager_links(page.text)
    assert sorted(seen) == sorted(crowd)


def test_empty_lists_invite_to_follow(client, make_user):
    make_user("loner")
    assert "No one follows loner yet." in client.get("/user/loner/followers").text
    assert "Explore" in client.get("/user/loner/following").text


def test_the_list_of_an_unknown_user_is_a_404(client):
    assert client.get("/user/nobody/followers").status_code == 404
