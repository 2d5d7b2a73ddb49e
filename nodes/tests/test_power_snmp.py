"""The PoE driver against a real SNMP agent: snmpsim on 127.0.0.1 with a data file whose
port-power columns are writable (its writecache variation module)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodes.choices import PowerState
from nodes.power.base import PowerError
from nodes.power.snmp import PETH_PSE_PORT_ADMIN_ENABLE, VENDORS, SnmpPoeDriver

COMMUNITY = "private"  # snmpsim serves data/<community>.snmprec to that community
V3 = {"user": "pinet", "auth_key": "auth-pass-phrase", "priv_key": "priv-pass-phrase"}
TP_LINK = VENDORS["tp-link"]
CISCO = VENDORS["cisco"]

# OID | type (2 = INTEGER, 4 = OCTET STRING)[:variation] | value. Ports 1-6 of group 1 have
# writable power; port 9's is read-only; detection status says "deliveringPower" (3).
_RECORDS = {
    "1.3.6.1.2.1.1.1.0": "4|pinet test PoE switch",
    **{f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.{port}": "2:writecache|value=1" for port in range(1, 7)},
    f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.9": "2|1",
    **{f"1.3.6.1.2.1.105.1.1.1.6.1.{port}": "2|3" for port in (*range(1, 7), 9)},
    f"{TP_LINK.admin_oid}.7": "2:writecache|value=1",
    f"{TP_LINK.status_oid}.7": "2|2",
    f"{CISCO.admin_oid}.1.8": "2:writecache|value=1",
    "1.3.6.1.2.1.105.1.1.1.6.1.8": "2|3",
}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, port: int):
        self.port = port

    def driver(self, pse_port: int, *, secrets: dict | None = None, **params) -> SnmpPoeDriver:
        params = {"host": "127.0.0.1", "udp_port": self.port, "pse_port": pse_port, "timeout": 2, **params}
        secrets = {"community": COMMUNITY} if secrets is None else secrets
        clean_params, clean_secrets = SnmpPoeDriver.clean(params=params, secrets=secrets)
        return SnmpPoeDriver(params=clean_params, secrets=clean_secrets)

    def read(self, oid: str) -> int:
        """What the agent holds now, read with a plain GET (not through the driver's logic)."""
        return self.driver(1)._exchange(get_oids=[oid])[0]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    need_snmpsim = importlib.util.find_spec("snmpsim") is not None
    responder = Path(sys.executable).with_name("snmpsim-command-responder")
    from tests.tools import need

    need(need_snmpsim and responder.exists(), "snmpsim is not installed (pip install -r requirements-dev.txt)")
    base = tmp_path_factory.mktemp("snmpsim")
    (base / "data").mkdir()
    (base / "cache").mkdir()
    ordered = sorted(_RECORDS, key=lambda oid: tuple(int(part) for part in oid.split(".")))
    (base / "data" / f"{COMMUNITY}.snmprec").write_text("".join(f"{oid}|{_RECORDS[oid]}\n" for oid in ordered))
    port = _free_udp_port()
    env = dict(os.environ)
    if os.geteuid() == 0:
        # snmpsim refuses to run as root unless told to (it would drop to another user, who
        # cannot read this Python); it listens on loopback only.
        env["SNMPSIM_ALLOW_ROOT"] = "true"
    log_path = base / "snmpsim.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                str(responder),
                "--v3-engine-id",
                "auto",
                f"--data-dir={base / 'data'}",
                f"--cache-dir={base / 'cache'}",
                f"--agent-udpv4-endpoint=127.0.0.1:{port}",
                "--v3-user",
                V3["user"],
                "--v3-auth-key",
                V3["auth_key"],
                "--v3-auth-proto",
                "SHA",
                "--v3-priv-key",
                V3["priv_key"],
                "--v3-priv-proto",
                "AES",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        for _ in range(300):
            if process.poll() is not None or "Listening at UDP/IPv4" in log_path.read_text():
                break
            time.sleep(0.1)
        assert process.poll() is None, f"snmpsim exited:\n{log_path.read_text()[-3000:]}"
        assert "Listening at UDP/IPv4" in log_path.read_text(), log_path.read_text()[-3000:]
        yield Agent(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_v2c_switches_the_port_off_and_on(agent):
    driver = agent.driver(1)
    assert driver.off().state == PowerState.OFF
    assert agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.1") == 2
    status = driver.status()
    assert status.state == PowerState.OFF and "port power disabled" in status.detail
    assert driver.on().state == PowerState.ON
    assert agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.1") == 1
    status = driver.status()
    assert status.state == PowerState.ON and "deliveringPower(3)" in status.detail


def test_cycle_writes_false_then_true(agent):
    driver = agent.driver(2, cycle_delay=3)
    seen = []

    def sleep(seconds):
        seen.append((seconds, agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.2")))

    result = driver.cycle(sleep=sleep)
    assert seen == [(3.0, 2)]  # off (false) while it waited
    assert result.state == PowerState.ON and agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.2") == 1


def test_v3_auth_priv(agent):
    secrets = {"auth_key": V3["auth_key"], "priv_key": V3["priv_key"]}
    params = {"version": "3", "user": V3["user"], "auth_protocol": "SHA", "priv_protocol": "AES", "context": COMMUNITY}
    driver = agent.driver(3, secrets=secrets, **params)
    driver.off()
    assert agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.3") == 2
    driver.on()
    assert driver.status().state == PowerState.ON


def test_v3_wrong_key_is_a_clear_error(agent):
    secrets = {"auth_key": "not-the-auth-key", "priv_key": V3["priv_key"]}
    driver = agent.driver(3, secrets=secrets, version="3", user=V3["user"], context=COMMUNITY, timeout=1, retries=0)
    with pytest.raises(PowerError, match="auth_key|check user") as error:
        driver.status()
    assert "not-the-auth-key" not in str(error.value)


def test_wrong_community_is_a_clear_error(agent):
    driver = agent.driver(1, secrets={"community": "guessed"}, timeout=1, retries=0)
    with pytest.raises(PowerError, match=r"No SNMP answer from 127\.0\.0\.1:\d+ within 1 s .*community") as error:
        driver.off()
    assert "guessed" not in str(error.value)
    assert agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.1") == 1


def test_nothing_listening_is_a_clear_error():
    driver = SnmpPoeDriver(
        params={"host": "127.0.0.1", "udp_port": _free_udp_port(), "pse_port": 1, "timeout": 1, "retries": 0},
        secrets={"community": COMMUNITY},
    )
    with pytest.raises(PowerError, match="No SNMP answer .* check host and udp_port"):
        driver.cycle(sleep=lambda s: None)


def test_read_only_port_says_what_to_check(agent):
    with pytest.raises(PowerError, match=r"refused to write .*105\.1\.1\.1\.3\.1\.9 .*read-only"):
        agent.driver(9).off()


def test_missing_port_says_which(agent):
    with pytest.raises(PowerError, match=r"no PoE port 1\.42 .*pse_group and pse_port"):
        agent.driver(42).status()


def test_tp_link_table(agent):
    driver = agent.driver(7, vendor="tp-link")
    driver.off()
    assert agent.read(f"{TP_LINK.admin_oid}.7") == 0  # TP-Link's disable is 0, not the standard's 2
    assert driver.status().state == PowerState.OFF
    driver.on()
    assert agent.read(f"{TP_LINK.admin_oid}.7") == 1
    assert driver.status().state == PowerState.ON


def test_cisco_table(agent):
    driver = agent.driver(8, vendor="cisco")
    driver.off()
    assert agent.read(f"{CISCO.admin_oid}.1.8") == 4  # cpeExtPsePortEnable disable(4)
    driver.on()
    assert agent.read(f"{CISCO.admin_oid}.1.8") == 1  # auto(1)


def test_custom_oids(agent):
    driver = agent.driver(
        4, vendor="custom", admin_oid=PETH_PSE_PORT_ADMIN_ENABLE, on_value=1, off_value=2, status_on=[1]
    )
    driver.off()
    assert agent.read(f"{PETH_PSE_PORT_ADMIN_ENABLE}.1.4") == 2
    assert driver.status().state == PowerState.OFF
