"""``/`` and the admin's "View site" lead to the API docs (both were 404s: there is no site)."""

from __future__ import annotations

import re

from django.test import Client
from rest_framework.test import APIClient


def test_the_root_redirects_to_the_api_docs(db):
    response = APIClient().get("/")

    assert response.status_code == 302
    assert response["Location"] == "/api/docs/"
    assert APIClient().get(response["Location"]).status_code == 200


def test_the_root_takes_only_reads(db):
    assert APIClient().head("/").status_code == 302
    assert APIClient().post("/", {}, format="json").status_code == 405


def test_the_admins_view_site_link_opens_the_api_docs(make_user):
    staff = make_user("charlie@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    page = client.get("/admin/").content.decode()

    link = re.search(r'<a href="([^"]*)">View site</a>', page)
    assert link is not None and link.group(1) == "/api/docs/"
