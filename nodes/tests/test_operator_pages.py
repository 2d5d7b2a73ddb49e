"""The operator pages of issue [6/8]: fleet table (filters, bulk actions, 10k boards), jobs,
configuration revisions, audit log, a board's rendered boot configuration, error pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from images.models import OSImage
from nodes.choices import NodeState
from nodes.models import AuditLog, Node
from provisioning.models import ConfigRevision, InstallJob
from provisioning.services import install_job_event, node_request_reinstall
from tests.factories import make_node, make_ready_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(tmp_path):
    return make_ready_image(tmp_path, b"zstd" * 100)


def _bulk_nodes(site, count: int) -> None:
    Node.objects.bulk_create(
        Node(site=site, hostname=f"b{n}", mac=f"dc:a6:33:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}")
        for n in range(count)
    )


def _dashboard_queries(client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("dashboard") + "?state=ready&page=2")
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_ten_thousand_boards_render_one_page_with_the_same_queries(client, site, operator):
    client.force_login(operator)
    _bulk_nodes(site, 120)
    small, _ = _dashboard_queries(client)
    Node.objects.bulk_create(
        Node(site=site, hostname=f"c{n}", mac=f"dc:a6:34:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}")
        for n in range(10_000 - 120)
    )
    assert Node.objects.count() == 10_000
    large, body = _dashboard_queries(client)
    assert large == small
    assert body.count('form="bulk"') == 50  # one page of results, not the fleet
    assert "10000 boards match" in body and "page 2 of 200" in body
    assert "state=ready&amp;page=3" in body  # the pager keeps the filter


def test_fleet_table_filters_by_site_state_and_search(client, site, operator):
    make_node(site=site, n=1, hostname="alpha")
    make_node(site=site, n=2, hostname="beta", state=NodeState.SUSPENDED)
    client.force_login(operator)
    body = client.get(reverse("dashboard") + "?state=suspended&site=lab").content.decode()
    assert ">beta<" in body and ">alpha<" not in body
    body = client.get(reverse("dashboard") + "?q=DC-A6-32-00-00-01").content.decode()
    assert ">alpha<" in body and ">beta<" not in body
    # An unknown choice is reported, not a 500, and the whole fleet is shown.
    response = client.get(reverse("dashboard") + "?state=melted")
    assert response.status_code == 200 and "Ignored a filter" in response.content.decode()


def test_overview_counts_boards_by_state_per_site(client, site, operator):
    make_node(site=site, n=1)
    make_node(site=site, n=2, state=NodeState.DEPLOYED)
    make_node(site=site, n=3, state=NodeState.DEPLOYED)
    client.force_login(operator)
    body = client.get(reverse("dashboard")).content.decode()
    assert "2 deployed</a>" in body and "1 ready</a>" in body


def test_bulk_boot_mode_reports_each_refused_board(client, site, operator):
    a, b = make_node(site=site, n=1), make_node(site=site, n=2)
    frozen = make_node(site=site, n=3, state=NodeState.SUSPENDED)
    client.force_login(operator)
    response = client.post(
        reverse("node-bulk"),
        {
            "action": "boot_mode",
            "boot_mode": "netboot",
            "node": [a.pk, b.pk, frozen.pk],
            "query": "site=lab",
            "confirm": "3",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("dashboard") + "?site=lab"
    body = response.content.decode()
    assert "Boot mode changed on 2 board(s): pi-1, pi-2." in body
    assert "pi-3: pi-3 is suspended" in body
    assert list(Node.objects.order_by("pk").values_list("boot_mode", flat=True)) == ["netboot", "netboot", "local"]
    assert AuditLog.objects.filter(action="node.boot_mode").count() == 2


def test_bulk_assign_and_release(client, site, tenant, operator):
    nodes = [make_node(site=site, n=n) for n in (1, 2)]
    client.force_login(operator)
    client.post(reverse("node-bulk"), {"action": "assign", "tenant": tenant.slug, "node": [n.pk for n in nodes]})
    assert set(Node.objects.values_list("tenant__slug", flat=True)) == {tenant.slug}
    client.post(reverse("node-bulk"), {"action": "release", "node": [nodes[0].pk]})
    assert Node.objects.get(pk=nodes[0].pk).tenant is None


def test_bulk_reinstall_needs_the_count_typed(client, site, operator, image):
    nodes = [make_node(site=site, n=n, state=NodeState.DEPLOYED) for n in (1, 2)]
    client.force_login(operator)
    data = {"action": "reinstall", "image": image.pk, "node": [n.pk for n in nodes]}
    body = client.post(reverse("node-bulk"), {**data, "confirm": "1"}, follow=True).content.decode()
    assert "Type the number of boards ticked (2)" in body and not InstallJob.objects.exists()
    body = client.post(reverse("node-bulk"), {**data, "confirm": "2"}, follow=True).content.decode()
    assert "Reinstall started" in body and InstallJob.objects.filter(status="pending").count() == 2


def test_bulk_with_nothing_ticked_says_so(client, operator):
    client.force_login(operator)
    body = client.post(reverse("node-bulk"), {"action": "release"}, follow=True).content.decode()
    assert "Select at least one board." in body


def test_customer_cannot_bulk(client, site, tenant, customer):
    node = make_node(site=site, n=1, tenant=tenant)
    client.force_login(customer)
    response = client.post(reverse("node-bulk"), {"action": "release", "node": [node.pk]})
    assert response.status_code == 404 and Node.objects.get(pk=node.pk).tenant == tenant


def test_jobs_page_is_scoped_live_and_cancels(client, site, tenant, other_tenant, customer, operator, image):
    mine = make_node(site=site, n=1, tenant=tenant, hostname="mine", state=NodeState.DEPLOYED)
    theirs = make_node(site=site, n=2, tenant=other_tenant, hostname="theirs", state=NodeState.DEPLOYED)
    job = node_request_reinstall(node=mine, image=image, by=operator)
    other = node_request_reinstall(node=theirs, image=image, by=operator)
    install_job_event(job=job, stage="writing", percent=45)
    client.force_login(customer)
    body = client.get(reverse("job-list")).content.decode()
    assert ">mine<" in body and ">theirs<" not in body and 'aria-valuenow="45"' in body
    rows = client.get(reverse("job-list") + "?active=true", HTTP_HX_REQUEST="true").content.decode()
    assert "<table>" in rows and "<h1>" not in rows  # htmx gets the rows only
    assert client.post(reverse("job-cancel", args=[other.pk])).status_code == 404
    assert InstallJob.objects.get(pk=other.pk).status == "pending"
    body = client.post(reverse("job-cancel", args=[job.pk]), follow=True).content.decode()
    assert f"Job {job.pk} cancelled" in body and InstallJob.objects.get(pk=job.pk).status == "cancelled"
    body = client.post(reverse("job-cancel", args=[job.pk]), follow=True).content.decode()
    assert f"Job {job.pk} is already cancelled." in body


def test_revision_pages_show_diffs_to_operators_only(client, site, operator, customer):
    revision = ConfigRevision.objects.create(
        site=site,
        backend="dnsmasq",
        sha256="ab" * 32,
        content="dhcp-range=192.0.2.100,192.0.2.199\n",
        status="rejected",
        validator_output="dnsmasq: bad dhcp-range at line 4",
        diff="--- a\n+++ b\n@@ -1 +1 @@\n-dhcp-range=old\n+dhcp-range=192.0.2.100,192.0.2.199\n",
    )
    client.force_login(operator)
    body = client.get(reverse("revision-list") + "?status=rejected").content.decode()
    assert "bad dhcp-range at line 4" in body and f"#{revision.pk}" in body
    body = client.get(reverse("revision-detail", args=[revision.pk])).content.decode()
    assert '<span class="del">-dhcp-range=old</span>' in body and '<span class="add">+dhcp-range=' in body
    client.force_login(customer)
    assert client.get(reverse("revision-list")).status_code == 404
    assert client.get(reverse("revision-detail", args=[revision.pk])).status_code == 404


def test_audit_page_filters_and_is_for_operators(client, site, operator, customer):
    node = make_node(site=site, n=1)
    client.force_login(operator)
    client.post(reverse("node-boot-mode", args=[node.pk]), {"boot_mode": "netboot"})
    body = client.get(reverse("audit-log") + "?action=node.boot&actor=alice").content.decode()
    assert "node.boot_mode" in body and "to=netboot" in body
    response = client.get(reverse("audit-log") + "?since=yesterday-ish")
    assert response.status_code == 200 and "Ignored a filter" in response.content.decode()
    client.force_login(customer)
    assert client.get(reverse("audit-log")).status_code == 404


def test_board_page_shows_its_boot_configuration_to_operators(client, site, tenant, operator, customer, image):
    pc = make_node(site=site, n=1, tenant=tenant, state=NodeState.DEPLOYED, board_model="x86-uefi")
    amd64 = OSImage.objects.create(
        name="debian", arch="amd64", source="/x", state="ready", artefact_path=image.artefact_path
    )
    node_request_reinstall(node=pc, image=amd64, by=operator)
    pi = make_node(site=site, n=2, tenant=tenant, state=NodeState.DEPLOYED)
    node_request_reinstall(node=pi, image=image, by=operator)
    client.force_login(operator)
    body = client.get(reverse("node-detail", args=[pc.pk])).content.decode()
    assert "What the boot server answers" in body and "<strong>install</strong>" in body
    assert f"dc:a6:32:00:00:01,set:n{pc.pk},set:pxe-x86" in body  # its dhcp-host line
    assert f"tag:n{pc.pk},224,&quot;http" in body and "/boot/&lt;token&gt;/?v=1" in body  # option 224, masked
    body = client.get(reverse("node-detail", args=[pi.pk])).content.decode()
    assert "install needs a ready Raspberry Pi installer image; answering as local" in body
    client.force_login(customer)
    body = client.get(reverse("node-detail", args=[pc.pk])).content.decode()
    assert "What the boot server answers" not in body


def test_missing_page_is_a_friendly_page(client, customer, settings):
    settings.DEBUG = False
    client.force_login(customer)
    response = client.get("/nodes/999999/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Nothing here" in body and "your boards" in body


def test_board_page_power_cycle(client, site, tenant, other_tenant, customer, operator):
    mine = make_node(site=site, n=1, tenant=tenant)
    theirs = make_node(site=site, n=2, tenant=other_tenant)
    client.force_login(customer)
    body = client.get(reverse("node-detail", args=[mine.pk])).content.decode()
    assert "Power-cycle" in body and 'value="off"' not in body  # customers may only cycle
    body = client.post(reverse("node-power", args=[mine.pk]), {"action": "cycle"}, follow=True).content.decode()
    assert "by hand" in body  # the manual driver says who has to act
    assert (
        "Choose one of: cycle"
        in client.post(reverse("node-power", args=[mine.pk]), {"action": "off"}, follow=True).content.decode()
    )
    assert client.post(reverse("node-power", args=[theirs.pk]), {"action": "cycle"}).status_code == 404
    client.force_login(operator)
    body = client.get(reverse("node-detail", args=[mine.pk])).content.decode()
    assert 'value="off"' in body and "manual" in body  # the action list shows the earlier cycle


def _discovered(site, n: int = 1, **fields):
    from django.utils import timezone

    from nodes.models import DiscoveredBoard

    now = timezone.now()
    values = {
        "site": site,
        "mac": f"dc:a6:32:aa:00:{n:02x}",
        "board_model": "pi4b",
        "is_pi": True,
        "serial": f"1000000{n}9ffefdef"[-16:],
        "revision": "00c03111",
        "vendor_class": "PXEClient:Arch:00000:UNDI:002001",
        "arch": 0,
        "first_seen": now,
        "last_seen": now,
        "seen_count": 3,
    }
    values.update(fields)
    return DiscoveredBoard.objects.create(**values)


def test_operator_adopts_a_discovered_board(client, site, tenant, operator):
    board = _discovered(site)
    make_node(site=site, n=1)
    client.force_login(operator)
    overview = client.get(reverse("dashboard")).content.decode()
    assert "1 discovered" in overview and "1 ready</a>" in overview  # counted apart, not multiplied
    body = client.get(reverse("discovered-list")).content.decode()
    assert "dc:a6:32:aa:00:01" in body and "rev 00c03111" in body
    form = client.get(reverse("discovered-adopt", args=[board.pk])).content.decode()
    assert 'value="pi4-9ffefdef"' in form and 'value="192.0.2.' in form  # suggestions filled in
    # A taken address is refused with the field named, and nothing changes.
    body = client.post(
        reverse("discovered-adopt", args=[board.pk]),
        {"hostname": "rack1-pi", "ip": "192.0.2.11", "boot_mode": "local", "board_model": "pi4b"},
    ).content.decode()
    assert "192.0.2.11 is already reserved by pi-1." in body
    assert Node.objects.count() == 1
    response = client.post(
        reverse("discovered-adopt", args=[board.pk]),
        {
            "hostname": "rack1-pi",
            "ip": "192.0.2.50",
            "tenant": tenant.slug,
            "boot_mode": "local",
            "board_model": "pi4b",
        },
        follow=True,
    )
    node = Node.objects.get(hostname="rack1-pi")
    assert response.redirect_chain[-1][0] == reverse("node-detail", args=[node.pk])
    assert "Adopted dc:a6:32:aa:00:01 as rack1-pi" in response.content.decode()
    assert (node.mac, node.serial, node.tenant, node.ip) == (board.mac, board.serial, tenant, "192.0.2.50")
    assert "dc:a6:32:aa:00:01" not in client.get(reverse("discovered-list")).content.decode()


def test_operator_ignores_and_unignores_a_board(client, site, operator):
    board = _discovered(site)
    client.force_login(operator)
    body = client.post(reverse("discovered-ignore", args=[board.pk]), follow=True).content.decode()
    assert "Ignoring dc:a6:32:aa:00:01" in body and "No boards waiting" in body
    body = client.get(reverse("discovered-list") + "?status=ignored").content.decode()
    assert "Un-ignore" in body
    client.post(reverse("discovered-ignore", args=[board.pk]), {"undo": "1"})
    assert "dc:a6:32:aa:00:01" in client.get(reverse("discovered-list")).content.decode()


def test_customers_cannot_see_discovered_boards(client, site, customer):
    board = _discovered(site)
    client.force_login(customer)
    assert client.get(reverse("discovered-list")).status_code == 404
    assert client.get(reverse("discovered-adopt", args=[board.pk])).status_code == 404
    assert client.post(reverse("discovered-ignore", args=[board.pk])).status_code == 404
