"""Everything sits behind Jupyter's authentication, XSRF protection and authorization."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .helpers import api, create_session, json_of

pytestmark = pytest.mark.usefixtures("notebook_dir")

SID = "12345678-1234-4234-8234-123456789abc"
ROUTES = [
    (("providers",), "GET", None),
    (("sessions",), "GET", None),
    (("sessions",), "POST", {"path": "analysis/q3.ipynb"}),
    (("sessions", SID), "GET", None),
    (("sessions", SID), "DELETE", None),
    (("sessions", SID, "messages"), "POST", {"content": "hi"}),
    (("sessions", SID, "events"), "GET", None),
    (("sessions", SID, "cancel"), "POST", {}),
    (("sessions", SID, "permissions", "r1"), "POST", {"decision": "allow"}),
]


async def test_every_route_needs_a_login(jp_fetch: Any, store_dir: Any) -> None:
    for parts, method, body in ROUTES:
        response = await api(
            jp_fetch, *parts, method=method, body=body, headers={"Authorization": ""}
        )
        assert response.code == 403, (parts, method)
        assert "message" in json_of(response)
    assert not (store_dir / "sessions").exists() or not list((store_dir / "sessions").iterdir())


def cookies_of(response: Any) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in response.headers.get_list("Set-Cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        jar.update({key: morsel.value for key, morsel in cookie.items()})
    return jar


async def login_with_cookie(base: str, token: str) -> dict[str, str]:
    client = AsyncHTTPClient()
    page = await client.fetch(f"{base}login", raise_error=False)
    jar = cookies_of(page)
    xsrf = jar.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode())[1]
    jar["_xsrf"] = jar.get("_xsrf", xsrf)
    response = await client.fetch(
        HTTPRequest(
            f"{base}login",
            method="POST",
            body=urlencode({"_xsrf": xsrf, "password": token}),
            headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())},
            follow_redirects=False,
        ),
        raise_error=False,
    )
    assert response.code in (302, 303), response.code
    jar.update(cookies_of(response))
    return jar


async def test_cookie_login_needs_the_xsrf_header_for_changes(
    jp_fetch: Any, jp_serverapp: Any, jp_base_url: str, jp_http_port: int
) -> None:
    # (jp_fetch starts the HTTP server; this test talks to it with its own client)
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    jar = await login_with_cookie(base, jp_serverapp.identity_provider.token)
    cookie_header = "; ".join(f"{k}={v}" for k, v in jar.items())
    client = AsyncHTTPClient()
    # Reading with the cookie works
    listed = await client.fetch(
        f"{base}api/assistant/sessions", headers={"Cookie": cookie_header}, raise_error=False
    )
    assert listed.code == 200
    # A change without the XSRF header is refused, and creates nothing
    body = '{"path": "analysis/q3.ipynb"}'
    refused = await client.fetch(
        HTTPRequest(
            f"{base}api/assistant/sessions",
            method="POST",
            body=body,
            headers={"Cookie": cookie_header},
        ),
        raise_error=False,
    )
    assert refused.code == 403
    # ...and accepted with it (as ServerConnection.makeRequest sends it)
    accepted = await client.fetch(
        HTTPRequest(
            f"{base}api/assistant/sessions",
            method="POST",
            body=body,
            headers={"Cookie": cookie_header, "X-XSRFToken": jar["_xsrf"]},
        ),
        raise_error=False,
    )
    assert accepted.code == 201
    after = await client.fetch(
        f"{base}api/assistant/sessions", headers={"Cookie": cookie_header}, raise_error=False
    )
    assert len(json_of(after)["sessions"]) == 1


class DenyAssistant(Authorizer):
    """Allows everything except the `assistant` resource, and records what it was asked."""

    asked: list[tuple[str, str]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        DenyAssistant.asked.append((action, resource))
        return resource != "assistant"


class TestAuthorization:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        return {
            **jp_server_config,
            "ServerApp": {**jp_server_config["ServerApp"], "authorizer_class": DenyAssistant},
        }

    async def test_the_assistant_resource_is_authorized(self, jp_fetch: Any) -> None:
        DenyAssistant.asked.clear()
        for parts, method, body in ROUTES:
            response = await api(jp_fetch, *parts, method=method, body=body)
            assert response.code == 403, (parts, method)
        assert {resource for _, resource in DenyAssistant.asked} == {"assistant"}
        assert {action for action, _ in DenyAssistant.asked} == {"read", "write"}


async def test_a_session_made_by_one_request_is_visible_to_the_next(jp_fetch: Any) -> None:
    session = await create_session(jp_fetch)
    assert json_of(await api(jp_fetch, "sessions", session["id"]))["id"] == session["id"]


class DenyOneAction(Authorizer):
    """Denies one action (`read` or `write`) on the `assistant` resource."""

    denied = "write"

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "assistant" and action == DenyOneAction.denied)


@pytest.mark.parametrize("denied", ["read", "write"])
class TestReadAndWriteSeparately:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any], denied: str) -> dict[str, Any]:
        DenyOneAction.denied = denied
        server = {**jp_server_config["ServerApp"], "authorizer_class": DenyOneAction}
        return {**jp_server_config, "ServerApp": server}

    async def test_only_the_denied_action_is_refused(
        self, jp_fetch: Any, denied: str, store_dir: Any
    ) -> None:
        for parts, method, body in ROUTES:
            response = await api(jp_fetch, *parts, method=method, body=body)
            action = "read" if method == "GET" else "write"
            if action == denied:
                assert response.code == 403, (parts, method)
            else:
                assert response.code != 403, (parts, method, response.code)
        if denied == "write":
            assert not (store_dir / "sessions").exists() or not list(
                (store_dir / "sessions").iterdir()
            )
