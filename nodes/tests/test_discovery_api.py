"""/api/v1/discovered-boards/: operators list, adopt, ignore; everyone else is turned away."""

from __future__ import annotations

import pytest

from images.models import OSImage
from nodes.apikeys import api_key_create
from nodes.discovery_services import discovered_board_ignore, discovery_record
from nodes.models import DiscoveredBoard, Node
from tests.factories import make_node

from .test_api import _client
from .test_discovery_services import pc, pi4

pytestmark = pytest.mark.django_db

URL = "/api/v1/discovered-boards/"


@pytest.fixture
def actors(operator, customer, tenant):
    return {
        "operator": _client(user=operator),
        "operator_key": _client(api_key_create(name="ops", scope="operator")[0]),
        "billing": _client(api_key_create(name="billing", scope="billing")[0]),
        "tenant_key_a": _client(api_key_create(name="a", scope="tenant", tenant=tenant)[0]),
        "customer_a": _client(user=customer),
        "anonymous": _client(),
    }


@pytest.fixture
def image(db):
    return OSImage.objects.create(name="raspios", arch="amd64", source="/x", state="ready")


@pytest.fixture
def boards(site):
    return {
        "pi": discovery_record(site=site, sighting=pi4(circuit_id="0004000a0107")),
        "pc": discovery_record(site=site, sighting=pc()),
    }


@pytest.mark.parametrize("who", ["operator", "operator_key", "billing", "tenant_key_a", "customer_a", "anonymous"])
def test_only_operators_get_in(actors, boards, who):
    client = actors[who]
    board = boards["pi"]
    listing = client.get(URL)
    detail = client.get(f"{URL}{board.pk}/")
    adopt = client.post(f"{URL}{board.pk}/adopt/", {}, format="json")
    ignore = client.post(f"{URL}{board.pk}/ignore/")
    if who in ("operator", "operator_key"):
        assert listing.status_code == 200 and listing.json()["count"] == 2
        assert detail.status_code == 200
        assert adopt.status_code == 201
        return
    expected = (401, 403) if who == "anonymous" else (403,)
    for response in (listing, detail, adopt, ignore):
        assert response.status_code in expected
    assert not Node.objects.exists()
    assert DiscoveredBoard.objects.get(pk=board.pk).status == "new"


def test_detail_shows_the_decoded_identity_and_the_suggestions(actors, boards):
    body = actors["operator"].get(f"{URL}{boards['pi'].pk}/").json()
    assert body["board_model"] == "pi4b" and body["serial"] == "9ffefdef" and body["site"] == "lab"
    assert body["circuit_id"] == "0004000a0107" and body["circuit_id_text"] == "vlan 10 module 1 port 7"
    assert body["suggested_hostname"] == "pi4-9ffefdef" and body["suggested_ip"] == "192.0.2.2"


def test_adopt_with_the_defaults(actors, boards):
    response = actors["operator"].post(f"{URL}{boards['pi'].pk}/adopt/", {}, format="json")
    assert response.status_code == 201, response.json()
    node = response.json()
    assert (node["hostname"], node["ip"], node["mac"], node["serial"], node["board_model"]) == (
        "pi4-9ffefdef",
        "192.0.2.2",
        "dc:a6:32:01:36:c2",
        "9ffefdef",
        "pi4b",
    )
    assert node["relay_circuit_id"] == "hex:0004000a0107" and node["state"] == "ready"
    assert actors["operator"].get(f"{URL}{boards['pi'].pk}/").json()["status"] == "adopted"


def test_adopt_with_everything_given(actors, boards, tenant, image):
    body = {"hostname": "rack1-u07", "ip": None, "tenant": "acme", "boot_mode": "netboot", "image": image.pk}
    response = actors["operator_key"].post(f"{URL}{boards['pc'].pk}/adopt/", body, format="json")
    assert response.status_code == 201, response.json()
    node = Node.objects.get(hostname="rack1-u07")
    assert (node.ip, node.tenant, node.boot_mode, node.image) == (None, tenant, "netboot", image)


@pytest.mark.parametrize(
    "body, status, field, text",
    [
        ({"hostname": "Bad Name"}, 400, "hostname", "not a valid host name"),
        ({"ip": "192.0.2.150"}, 400, "ip", "inside the dynamic range"),
        ({"ip": "192.0.2.11"}, 400, "ip", "already reserved by pi-1"),
        ({"hostname": "PI-1"}, 400, "hostname", "already has a node called pi-1"),
        ({"ip": "not-an-ip"}, 400, "ip", "IPv4"),
        ({"boot_mode": "install"}, 400, "boot_mode", "not a valid choice"),
        ({"tenant": "nobody"}, 400, "tenant", "No tenant"),
        ({"image": 999999}, 400, "image", "No such image"),
    ],
)
def test_a_refused_adoption_is_a_400_naming_the_field(actors, boards, site, body, status, field, text):
    make_node(site=site, n=1)  # 192.0.2.11
    response = actors["operator"].post(f"{URL}{boards['pc'].pk}/adopt/", body, format="json")
    assert response.status_code == status
    assert field in response.json() and text in str(response.json()[field])
    assert Node.objects.count() == 1
    assert DiscoveredBoard.objects.get(pk=boards["pc"].pk).status == "new"


def test_adopting_twice_is_a_409(actors, boards):
    client = actors["operator"]
    assert client.post(f"{URL}{boards['pc'].pk}/adopt/", {}, format="json").status_code == 201
    again = client.post(f"{URL}{boards['pc'].pk}/adopt/", {"hostname": "other"}, format="json")
    assert again.status_code == 409 and "already adopted" in again.json()["detail"]


def test_adopt_is_idempotent_with_a_key(actors, boards):
    client = actors["operator"]
    first = client.post(f"{URL}{boards['pc'].pk}/adopt/", {}, format="json", HTTP_IDEMPOTENCY_KEY="adopt-1")
    replay = client.post(f"{URL}{boards['pc'].pk}/adopt/", {}, format="json", HTTP_IDEMPOTENCY_KEY="adopt-1")
    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replay"] == "true" and replay.json() == first.json()
    assert Node.objects.count() == 1


def test_ignore_and_unignore(actors, boards):
    client = actors["operator"]
    board = boards["pc"]
    assert client.post(f"{URL}{board.pk}/ignore/").json()["status"] == "ignored"
    assert [b["mac"] for b in client.get(URL, {"status": "new"}).json()["results"]] == [boards["pi"].mac]
    assert client.post(f"{URL}{board.pk}/unignore/").json()["status"] == "new"
    client.post(f"{URL}{board.pk}/adopt/", {}, format="json")
    assert client.post(f"{URL}{board.pk}/ignore/").status_code == 409


def test_filters(actors, boards, site):
    client = actors["operator"]
    discovered_board_ignore(board=boards["pi"], by=None)

    def macs(**params):
        return sorted(b["mac"] for b in client.get(URL, params).json()["results"])

    assert macs(is_pi="true") == [boards["pi"].mac]
    assert macs(is_pi="false") == [boards["pc"].mac]
    assert macs(status="ignored") == [boards["pi"].mac]
    assert macs(site="lab") == sorted([boards["pi"].mac, boards["pc"].mac])
    assert macs(site="elsewhere") == []
    assert macs(board_model="x86-bios") == [boards["pc"].mac]
    assert macs(q="DC-A6-32-01-36-C2") == [boards["pi"].mac]
    assert macs(q="9ffe") == [boards["pi"].mac]
    assert client.get(URL, {"status": "bogus"}).status_code == 400
