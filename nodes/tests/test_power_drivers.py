"""Driver parameters: every mistake is named with what to do instead; the vendor table is data."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from nodes.choices import PowerDriver, PowerState
from nodes.power import driver_class
from nodes.power.base import ManualPowerRequired, Target
from nodes.power.manual import ManualDriver
from nodes.power.snmp import VENDORS, SnmpPoeDriver
from nodes.power.webhook import WebhookDriver


def _errors(cls, params, secrets=None) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as error:
        cls.clean(params=params, secrets=secrets or {})
    return error.value.message_dict


def test_every_driver_choice_has_a_driver():
    for name in PowerDriver.values:
        assert driver_class(name).name == name


def test_manual_driver_tells_a_person():
    driver = ManualDriver(params={}, target=Target(hostname="pi-3"))
    with pytest.raises(ManualPowerRequired, match="pi-3 has no remote power control: power-cycle it"):
        driver.cycle()
    assert driver.status().state == PowerState.UNKNOWN
    assert ManualDriver.clean(params={}, secrets={}) == ({}, {})
    assert "secrets" in _errors(ManualDriver, {}, {"community": "x"})


def test_snmp_v2c_parameters():
    params, secrets = SnmpPoeDriver.clean(
        params={"host": "192.0.2.2", "pse_port": "5", "vendor": "cisco"}, secrets={"community": "rw-community"}
    )
    assert params == {"host": "192.0.2.2", "pse_port": 5, "vendor": "cisco", "version": "2c"}
    assert secrets == {"community": "rw-community"}


def test_snmp_mistakes_are_all_named_at_once():
    errors = _errors(SnmpPoeDriver, {"host": "not a host!", "pse_port": 0, "community": "x", "colour": "red"})
    assert set(errors) == {"host", "pse_port", "community", "colour"}
    assert "send it in secrets" in errors["community"][0]
    assert "Unknown parameter" in errors["colour"][0]


def test_snmp_v3_needs_auth_priv():
    errors = _errors(SnmpPoeDriver, {"host": "sw1.example.net", "pse_port": 1, "version": "3"}, {"auth_key": "short"})
    assert set(errors) == {"user", "auth_key", "priv_key"}
    params, secrets = SnmpPoeDriver.clean(
        params={"host": "sw1.example.net", "pse_port": 1, "version": "3", "user": "pinet", "auth_protocol": "SHA256"},
        secrets={"auth_key": "a" * 12, "priv_key": "p" * 12},
    )
    assert params["priv_protocol"] == "AES" and set(secrets) == {"auth_key", "priv_key"}


def test_snmp_custom_oids_only_for_custom():
    errors = _errors(SnmpPoeDriver, {"host": "192.0.2.2", "pse_port": 1, "admin_oid": "1.3.6.1"}, {"community": "c"})
    assert "Only for vendor custom" in errors["admin_oid"][0]
    errors = _errors(SnmpPoeDriver, {"host": "192.0.2.2", "pse_port": 1, "vendor": "custom"}, {"community": "c"})
    assert {"admin_oid", "on_value", "off_value"} <= set(errors)


def test_status_only_vendor_refuses_to_switch():
    driver = SnmpPoeDriver(
        params={"host": "192.0.2.2", "pse_port": 3, "vendor": "mikrotik"}, secrets={"community": "c"}
    )
    from nodes.power.base import PowerError

    with pytest.raises(PowerError, match="cannot switch PoE over SNMP.*webhook driver"):
        driver.off()


def test_vendor_table_is_well_formed():
    for name, vendor in VENDORS.items():
        for oid in (vendor.admin_oid, vendor.status_oid):
            assert oid is None or re.fullmatch(r"1\.3\.6\.1(\.\d+)+", oid), name
        assert vendor.confidence in ("documented", "derived"), name
        assert vendor.source and vendor.index in ("group.port", "port"), name
        assert (vendor.admin_oid is None) == (vendor.on_value is None) == (vendor.off_value is None), name
        assert vendor.on_value != vendor.off_value or vendor.admin_oid is None, name
        assert set(state for _, state in vendor.status_map.values()) <= set(PowerState.values), name


def test_webhook_parameters():
    params, secrets = WebhookDriver.clean(
        params={
            "on": "http://192.0.2.50/relay/0?turn=on",
            "off": {"url": "http://192.0.2.50/relay/0?turn=off", "method": "GET"},
            "auth": "basic",
            "username": "admin",
        },
        secrets={"password": "pw", "headers": {"X-Api-Key": "k"}},
    )
    assert params["on"] == {"url": "http://192.0.2.50/relay/0?turn=on", "method": "POST"}
    assert secrets == {"password": "pw", "headers": {"X-Api-Key": "k"}}


def test_webhook_mistakes():
    errors = _errors(
        WebhookDriver,
        {
            "on": "ftp://plug/",
            "status": {"url": "http://admin:pw@192.0.2.50/status"},
            "headers": {"Authorization": "Bearer x", "Bad Header": "v"},
            "auth": "bearer",
            "password": "pw",
        },
    )
    assert {"on", "cycle", "status", "headers", "token", "password"} <= set(errors)
    assert "no credentials in the URL" in errors["status"][0]
    assert any("send it in secrets.headers" in m for m in errors["headers"])
    assert "send it in secrets" in errors["password"][0]


def test_webhook_status_needs_a_way_to_read_it():
    errors = _errors(WebhookDriver, {"cycle": "http://192.0.2.50/c", "status": "http://192.0.2.50/s"})
    assert "status_json_path" in errors
    errors = _errors(
        WebhookDriver, {"cycle": "http://192.0.2.50/c", "status": "http://192.0.2.50/s", "status_regex_on": "("}
    )
    assert "Not a regular expression" in errors["status_regex_on"][0]
