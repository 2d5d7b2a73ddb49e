"""The webhook driver against a local HTTP server on 127.0.0.1 (nodes/tests/plug.py)."""

from __future__ import annotations

import json

import pytest

from nodes.choices import PowerState
from nodes.power.base import PowerError, Target
from nodes.power.webhook import WebhookDriver, check_destination

from .plug import PASSWORD, TOKEN, Plug


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = True  # the test plug listens on 127.0.0.1


@pytest.fixture
def plug():
    plug = Plug()
    yield plug
    plug.close()


def _driver(params: dict, secrets: dict | None = None) -> WebhookDriver:
    clean_params, clean_secrets = WebhookDriver.clean(params=params, secrets=secrets or {})
    return WebhookDriver(
        params=clean_params, secrets=clean_secrets, target=Target(node_id=7, hostname="pi-7", mac="dc:a6:32:00:00:07")
    )


def test_bearer_token_json_body_and_status(plug):
    driver = _driver(plug.shelly_params(), {"token": TOKEN})
    assert driver.off().state == PowerState.OFF
    request = plug.requests[-1]
    assert request["method"] == "POST" and request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"turn": "off", "board": "pi-7"}  # the template filled in
    status = driver.status()
    assert (status.state, status.detail) == (PowerState.OFF, "ison = false")
    driver.on()
    assert plug.on and driver.status().state == PowerState.ON


def test_cycle_without_a_cycle_url_is_off_wait_on(plug):
    driver = _driver(plug.shelly_params(cycle_delay=2), {"token": TOKEN})
    waited = []
    result = driver.cycle(sleep=lambda seconds: waited.append((seconds, plug.on)))
    assert waited == [(2.0, False)] and result.state == PowerState.ON and plug.on
    assert [json.loads(r["body"])["turn"] for r in plug.requests] == ["off", "on"]


def test_tasmota_style_get_with_secret_query_and_regex(plug):
    base = f"{plug.base}/cm"
    params = {
        "on": {"url": f"{base}?cmnd=Power%20On", "method": "GET"},
        "off": {"url": f"{base}?cmnd=Power%20Off", "method": "GET"},
        "status": {"url": f"{base}?cmnd=Power"},
        "status_regex_on": '"POWER": *"ON"',
        "status_regex_off": '"POWER": *"OFF"',
    }
    driver = _driver(params, {"query": {"user": "admin", "password": PASSWORD}})
    driver.off()
    assert plug.on is False and plug.requests[-1]["query"]["cmnd"] == "Power Off"
    assert driver.status().state == PowerState.OFF
    driver.on()
    assert driver.status().state == PowerState.ON


def test_wrong_credentials_say_what_to_check(plug):
    driver = _driver({"cycle": f"{plug.base}/basic", "auth": "basic", "username": "admin"}, {"password": "wrong"})
    with pytest.raises(PowerError, match=r"refused POST .*/basic \(HTTP 401\): check auth") as error:
        driver.cycle()
    assert "wrong" not in str(error.value)
    driver = _driver({"cycle": f"{plug.base}/basic", "auth": "basic", "username": "admin"}, {"password": PASSWORD})
    assert driver.cycle().state == PowerState.ON


def test_secret_query_never_appears_in_an_error(plug):
    driver = _driver({"cycle": f"{plug.base}/fail"}, {"query": {"password": PASSWORD}})
    with pytest.raises(PowerError) as error:
        driver.cycle()
    assert PASSWORD not in str(error.value) and plug.requests[-1]["query"]["password"] == PASSWORD


def test_server_error_is_a_clear_error(plug):
    with pytest.raises(PowerError, match=r"answered POST .*/fail with HTTP 500 \(expected 2xx\): 'relay stuck'"):
        _driver({"cycle": f"{plug.base}/fail"}).cycle()


def test_timeout_is_a_clear_error(plug):
    driver = _driver({"cycle": f"{plug.base}/slow", "timeout": 1})
    with pytest.raises(PowerError, match=r"No answer from 127\.0\.0\.1 within 1 s to POST .*/slow"):
        driver.cycle()


def test_redirects_are_not_followed(plug):
    with pytest.raises(PowerError, match=r"redirect \(HTTP 302 to /relay/0\), which pinet does not follow"):
        _driver({"cycle": f"{plug.base}/redirect"}).cycle()
    assert [r["path"] for r in plug.requests] == ["/redirect"]


def test_status_path_that_is_not_there(plug):
    driver = _driver(plug.shelly_params(status_json_path="relays.0.ison"), {"token": TOKEN})
    with pytest.raises(PowerError, match="has no 'relays.0.ison'.*check status_json_path"):
        driver.status()


def test_expected_status_codes(plug):
    driver = _driver({"cycle": {"url": f"{plug.base}/fail", "expect": [500]}})
    assert driver.cycle().state == PowerState.ON


def test_loopback_refused_unless_allowed(plug, settings):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(PowerError, match="resolves to 127.0.0.1, which power webhooks may not reach"):
        _driver({"cycle": f"{plug.base}/relay/0"}).cycle()
    assert plug.requests == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://10.20.30.40/relay/0", True),  # plugs live on private networks
        ("http://192.168.1.50/cm", True),
        ("http://[fd00::50]/rpc", True),
        ("http://169.254.169.254/latest/meta-data/", False),  # cloud metadata
        ("http://[::1]/", False),
        ("http://[::ffff:127.0.0.1]/", False),
        ("http://0.0.0.0/", False),
        ("http://224.0.0.1/", False),
    ],
)
def test_destination_policy(settings, url, allowed):
    settings.PINET_WEBHOOK_ALLOW_PRIVATE = False
    if allowed:
        check_destination(url)  # resolves only: nothing is sent
    else:
        with pytest.raises(PowerError, match="may not reach"):
            check_destination(url)
