"""Item 14: a favicon, linked from every page (site and admin), served without a login."""

import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.django_db


def test_the_favicon_is_an_svg_anyone_can_fetch(client):
    response = client.get("/favicon.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert "max-age=86400" in response["Cache-Control"]
    root = ET.fromstring(response.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_favicon_ico_redirects_to_the_svg(client):
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/favicon.svg")


def test_post_is_refused(client):
    assert client.post("/favicon.svg").status_code == 405


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_pages_link_it(client, url):
    html = client.get(url).content.decode()
    assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in html
