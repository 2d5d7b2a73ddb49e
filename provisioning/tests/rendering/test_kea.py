import json

from provisioning.rendering import kea

from .snapshots import KEA_SITE


def test_golden(golden):
    golden("kea-dhcp4.json", kea.render(KEA_SITE)["kea-dhcp4.json"])


def test_option43_matches_dnsmasq_bytes():
    # netboot.md §1.1: 06 01 03 | 0a 04 00 "PXE" | 09 14 00 00 11 "Raspberry Pi Boot" | ff
    assert kea.option43_hex("Raspberry Pi Boot") == "0601030A0400505845091400001152617370626572727920506920426F6F74FF"


def test_reservations_by_identifier():
    cfg = kea.config(KEA_SITE)["Dhcp4"]
    reservations = {r.get("hostname"): r for r in cfg["subnet4"][0]["reservations"]}
    assert reservations["pi-8"]["circuit-id"] == "67:65:2d:30:2f:30:2f:38"
    # Option 97 is not Kea's client-id (option 61): the node is still found by its MAC.
    assert reservations["pi-9"]["hw-address"] == "dc:a6:32:00:00:09" and "client-id" not in reservations["pi-9"]
    assert reservations["pi-2"]["hw-address"] == "dc:a6:32:00:00:02"
    assert reservations["pi-2"]["client-classes"] == ["pinet-pi-host"]
    assert "client-classes" not in reservations["pi-1"]
    assert reservations["pi-4"]["option-data"][0]["always-send"] is True
    assert cfg["subnet4"][0]["relay"] == {"ip-addresses": ["192.0.2.254"]}


def test_validation_copy_listens_on_any_interface():
    assert json.loads(kea.validation_text(KEA_SITE))["Dhcp4"]["interfaces-config"]["interfaces"] == ["*"]


def test_shared_circuit_id_is_refused():
    from dataclasses import replace

    import pytest

    from provisioning.rendering import ConfigRenderError

    twin = replace(
        KEA_SITE.hosts[1],
        node_id=99,
        hostname="pi-99",
        mac="dc:a6:32:00:00:99",
        circuit_id=KEA_SITE.hosts[7].circuit_id,
    )
    with pytest.raises(ConfigRenderError, match="share circuit-id"):
        kea.render(replace(KEA_SITE, hosts=(*KEA_SITE.hosts, twin)))
