"""HTTP webhook driver: smart plugs (Shelly, Tasmota), relay boards and anything else that
switches power when an URL is called.

Each action (on, off, cycle, status) has its own URL, method, JSON body template and expected
status codes; a status answer is read with a JSON path or a regular expression. Requests go
where the URL says or nowhere, as outgoing webhooks do (nodes/webhooks.py): no proxies from
the environment, no redirects followed. Plugs live on private networks, and only operators
can set these URLs, so private addresses are allowed; loopback, link-local (cloud metadata),
multicast and reserved addresses are not, unless PINET_WEBHOOK_ALLOW_PRIVATE is set.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings

from nodes.choices import PowerState
from nodes.webhooks import _NoRedirects

from .base import Driver, Params, PowerError, PowerResult, unknown

ACTIONS = ("on", "off", "cycle", "status")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PLACEHOLDERS = ("{hostname}", "{node_id}", "{mac}", "{action}")
DEFAULT_ON = [True, 1, "on", "ON", "On", "true", "1"]
DEFAULT_OFF = [False, 0, "off", "OFF", "Off", "false", "0"]
MAX_ANSWER = 65536
_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}"


def check_destination(url: str) -> None:
    """Refuse loopback, link-local, multicast, unspecified and reserved destinations unless
    PINET_WEBHOOK_ALLOW_PRIVATE is set; private (RFC 1918, ULA) addresses are where plugs are."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        raise PowerError(f"Cannot resolve {host}: {exc.strerror or exc}. Check the URL.") from None
    if settings.PINET_WEBHOOK_ALLOW_PRIVATE:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if (
            address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
        ):
            raise PowerError(
                f"{host} resolves to {address}, which power webhooks may not reach (loopback, link-local, "
                "multicast or reserved); set PINET_WEBHOOK_ALLOW_PRIVATE=1 if the plug really is there."
            )


class WebhookDriver(Driver):
    name = "webhook"
    secret_fields = ("password", "token", "headers", "query")
    secret_uses = {"password": "auth basic", "token": "auth bearer"}

    @classmethod
    def clean(cls, *, params: dict, secrets: dict) -> tuple[dict, dict]:
        allowed = [
            *ACTIONS,
            *"headers auth username verify_tls status_json_path status_on status_off".split(),
            *"status_regex_on status_regex_off timeout cycle_delay".split(),
        ]
        p = Params(params, allowed=allowed, secrets=("password", "token", "query"))
        for action in ACTIONS:
            if action in p.data:
                cls._clean_action(p, action)
        if not ("cycle" in p.data or ("on" in p.data and "off" in p.data)):
            p.error("cycle", "Give a cycle URL, or both an on and an off URL.")
        p.clean["headers"] = cls._clean_headers(p, "headers", p.data.get("headers"))
        if not p.clean["headers"]:
            del p.clean["headers"]
        auth = p.choice("auth", ["none", "basic", "bearer"], default="none")
        p.boolean("verify_tls", default=True)
        p.timing()
        if "status" in p.data:
            path = p.text("status_json_path", max_length=200, pattern=r"[^.\s]+(\.[^.\s]+)*", hint="Like relays.0.ison")
            for key in ("status_regex_on", "status_regex_off"):
                pattern = p.text(key, max_length=200)
                if pattern is not None and key in p.clean:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        p.error(key, f"Not a regular expression: {exc}.")
            for key in ("status_on", "status_off"):
                values = p.data.get(key)
                if values is not None:
                    if isinstance(values, list) and all(isinstance(v, (str, int, bool)) for v in values):
                        p.clean[key] = values
                    else:
                        p.error(key, "A list of strings, numbers or booleans the status value may take.")
            if not path and not p.data.get("status_regex_on") and not p.data.get("status_regex_off"):
                p.error("status_json_path", "Say how to read the status answer: status_json_path or status_regex_on.")
        else:
            for key in ("status_json_path", "status_regex_on", "status_regex_off", "status_on", "status_off"):
                if key in p.data:
                    p.error(key, "Only with a status URL.")
        clean_secrets: dict[str, Any] = {}
        if auth == "basic":
            p.text("username", required="Required for basic authentication.", max_length=128)
            if not isinstance(secrets.get("password"), str) or not secrets.get("password"):
                p.error("password", "Required for basic authentication (a secret).")
            else:
                clean_secrets["password"] = secrets["password"]
        elif "username" in p.data:
            p.error("username", "Only with auth basic.")
        if auth == "bearer":
            token = secrets.get("token")
            if not isinstance(token, str) or not token or re.search(r"[\r\n]", token):
                p.error("token", "Required for bearer authentication (a secret, one line).")
            else:
                clean_secrets["token"] = token
        secret_headers = cls._clean_headers(p, "headers", secrets.get("headers"), secret=True)
        if secret_headers:
            clean_secrets["headers"] = secret_headers
        query = secrets.get("query")
        if query is not None:
            if isinstance(query, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in query.items()):
                if query:
                    clean_secrets["query"] = query
            else:
                p.error("query", "An object of query parameter names to values (strings), e.g. Tasmota's user.")
        for key in sorted(set(secrets) - set(cls.secret_fields)):
            p.error(key, f"Not a secret of this driver; it takes: {', '.join(cls.secret_fields)}.")
        return p.done(), clean_secrets

    @staticmethod
    def _clean_action(p: Params, action: str) -> None:
        spec = p.data[action]
        if isinstance(spec, str):
            spec = {"url": spec}
        if not isinstance(spec, dict):
            p.error(action, "An URL, or an object with url, method, body and expect.")
            return
        unknown_keys = set(spec) - {"url", "method", "body", "expect"}
        if unknown_keys:
            p.error(action, f"Unknown keys {', '.join(sorted(unknown_keys))}; use url, method, body and expect.")
            return
        url = spec.get("url")
        try:
            # Whitespace or control characters would make http.client quote the whole URL,
            # secret query values included, in its error; an odd port only fails later.
            if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
                raise ValueError
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port outside 0-65535)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            p.error(action, "url: an http(s) URL with a host, e.g. http://192.0.2.50/relay/0?turn=on.")
            return
        if parts.username or parts.password:
            p.error(action, "url: no credentials in the URL (it is stored in clear); use auth and secrets.")
            return
        if parts.fragment or len(url) > 1000:
            p.error(action, "url: no fragment, at most 1000 characters.")
            return
        method = spec.get("method", "GET" if action == "status" else "POST")
        if method not in METHODS:
            p.error(action, f"method: one of {', '.join(METHODS)}.")
            return
        expect = spec.get("expect")
        if expect is not None and not (
            isinstance(expect, list) and expect and all(isinstance(c, int) and 100 <= c <= 599 for c in expect)
        ):
            p.error(action, "expect: a list of HTTP status codes, e.g. [200, 204].")
            return
        clean = {"url": url, "method": method}
        if "body" in spec:
            if method == "GET":
                p.error(action, "body: a GET sends no body; use POST or PUT.")
                return
            if len(json.dumps(spec["body"])) > 10000:
                p.error(action, "body: at most 10,000 characters of JSON.")
                return
            clean["body"] = spec["body"]
        if expect:
            clean["expect"] = expect
        p.clean[action] = clean

    @staticmethod
    def _clean_headers(p: Params, key: str, headers: Any, *, secret: bool = False) -> dict[str, str]:
        if headers is None:
            return {}
        label = "secrets.headers" if secret else "headers"
        if not isinstance(headers, dict):
            p.error(key, f"{label}: an object of header names to values.")
            return {}
        clean = {}
        for name, value in headers.items():
            if not re.fullmatch(_HEADER_NAME, str(name)) or not isinstance(value, str) or re.search(r"[\r\n]", value):
                p.error(key, f"{label}: {name!r} is not a header name with a one-line string value.")
                continue
            if name.lower() in ("authorization", "cookie") and not secret:
                p.error(key, f"{label}: {name} carries a credential; send it in secrets.headers (stored encrypted).")
                continue
            clean[name] = value
        return clean

    # --- the actions

    def on(self) -> PowerResult:
        self._call("on")
        return PowerResult(state=PowerState.ON, detail=self._said)

    def off(self) -> PowerResult:
        self._call("off")
        return PowerResult(state=PowerState.OFF, detail=self._said)

    def cycle(self, **kwargs) -> PowerResult:
        if "cycle" not in self.params:
            return super().cycle(**kwargs)
        self._call("cycle")
        return PowerResult(state=PowerState.ON, detail=self._said)

    def status(self) -> PowerResult:
        if "status" not in self.params:
            return unknown("no status URL is configured")
        text = self._call("status").decode("utf-8", "replace")
        path = self.params.get("status_json_path")
        if path:
            try:
                value = json.loads(text)
            except ValueError:
                raise PowerError(f"The status answer is not JSON ({text[:120]!r}); check the status URL.") from None
            for part in path.split("."):
                if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                elif isinstance(value, dict) and part in value:
                    value = value[part]
                else:
                    raise PowerError(
                        f"The status answer has no {path!r} (no {part!r} in it); check status_json_path. "
                        f"The answer was {text[:200]!r}."
                    )
            detail = f"{path} = {json.dumps(value)[:100]}"
            if isinstance(value, (str, int, bool)) and value in self.params.get("status_on", DEFAULT_ON):
                return PowerResult(state=PowerState.ON, detail=detail)
            if isinstance(value, (str, int, bool)) and value in self.params.get("status_off", DEFAULT_OFF):
                return PowerResult(state=PowerState.OFF, detail=detail)
            return unknown(detail + " (neither in status_on nor in status_off)")
        if self.params.get("status_regex_on") and re.search(self.params["status_regex_on"], text):
            return PowerResult(state=PowerState.ON, detail="the answer matches status_regex_on")
        if self.params.get("status_regex_off") and re.search(self.params["status_regex_off"], text):
            return PowerResult(state=PowerState.OFF, detail="the answer matches status_regex_off")
        return unknown(f"the answer matches neither status regex: {text[:120]!r}")

    # --- the wire

    def _render(self, value: Any, action: str, *, quote: bool = False) -> Any:
        """Fill the placeholders in every string of a template. Plain replacement, never
        str.format: a template must not reach into Python objects."""
        if isinstance(value, str):
            fills = {
                "{hostname}": self.target.hostname,
                "{node_id}": str(self.target.node_id),
                "{mac}": self.target.mac,
                "{action}": action,
            }
            for placeholder, fill in fills.items():
                value = value.replace(placeholder, urllib.parse.quote(fill, safe="") if quote else fill)
            return value
        if isinstance(value, list):
            return [self._render(v, action) for v in value]
        if isinstance(value, dict):
            return {k: self._render(v, action) for k, v in value.items()}
        return value

    def _call(self, action: str) -> bytes:
        spec = self.params[action]
        shown = self._render(spec["url"], action, quote=True)  # messages never show secret query values
        url = shown
        if self.secrets.get("query"):
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(self.secrets["query"].items())
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        headers = {"User-Agent": "pinet-power/1", **self.params.get("headers", {}), **self.secrets.get("headers", {})}
        auth = self.params.get("auth", "none")
        if auth == "basic":
            import base64

            pair = f"{self.params['username']}:{self.secrets.get('password', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif auth == "bearer":
            headers["Authorization"] = f"Bearer {self.secrets.get('token', '')}"
        body = None
        if "body" in spec:
            body = json.dumps(self._render(spec["body"], action)).encode()
            headers["Content-Type"] = "application/json"
        method = spec.get("method", "POST")
        host = urllib.parse.urlsplit(url).hostname
        check_destination(url)
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 (http(s) only)
        context = ssl.create_default_context()
        if not self.params.get("verify_tls", True):
            # A relay board with a self-signed certificate: the operator chose this per node.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirects(), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(request, timeout=self.timeout) as response:
                code, content, location = response.status, response.read(MAX_ANSWER), ""
        except urllib.error.HTTPError as exc:
            code, location = exc.code, exc.headers.get("Location", "") if exc.headers else ""
            try:
                content = exc.read(MAX_ANSWER)
            except OSError:
                content = b""
        except TimeoutError:
            raise PowerError(
                f"No answer from {host} within {self.timeout:g} s to {method} {shown}: check that the plug or "
                "relay board is on the network, or raise timeout."
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise PowerError(
                    f"No answer from {host} within {self.timeout:g} s to {method} {shown}: check that the plug "
                    "or relay board is on the network, or raise timeout."
                ) from None
            raise PowerError(f"Cannot reach {host} for {method} {shown}: {reason}. Check the URL.") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # The exception's text may quote the full URL with its secret query values: name
            # only its kind, and the URL as shown (secrets masked).
            raise PowerError(f"The request {method} {shown} failed ({type(exc).__name__}).") from None
        expected = spec.get("expect") or range(200, 300)
        if code not in expected:
            if 300 <= code < 400:
                raise PowerError(
                    f"{host} answered {method} {shown} with a redirect (HTTP {code} to {location or '?'}), which "
                    "pinet does not follow: put the final URL in the settings."
                )
            if code in (401, 403):
                raise PowerError(
                    f"{host} refused {method} {shown} (HTTP {code}): check auth, username and the password or token."
                )
            snippet = content[:200].decode("utf-8", "replace")
            want = ", ".join(map(str, spec["expect"])) if spec.get("expect") else "2xx"
            raise PowerError(f"{host} answered {method} {shown} with HTTP {code} (expected {want}): {snippet!r}.")
        self._said = f"{method} {shown}: HTTP {code}"
        return content

    _said = ""
