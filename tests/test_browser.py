"""The panel in a real browser (Playwright driving Debian's Chromium) against a live server."""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from pathlib import Path

import pytest

from images.models import OSImage
from nodes.models import TenantMembership
from provisioning.selectors import live_boot_urls
from tests.factories import make_node, make_site, make_tenant
from tests.tools import need

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
OUT = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(monkeypatch):
    need(os.path.exists(CHROMIUM), "Debian's chromium is not installed (apt-get install chromium)")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="pinet-chromium-"), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield context
        finally:
            context.close()


def _shot(page, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


def _login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    try:
        page.wait_for_url(f"{base}/", timeout=15000)
    except Exception:
        raise AssertionError(page.inner_text("main")[:1500]) from None


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).read()


def test_customer_reinstalls_and_watches_progress(browser, live_server, django_user_model, tmp_path):
    site = make_site()
    acme, birch = make_tenant("acme"), make_tenant("birch")
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123456")
    charlie = django_user_model.objects.create_user("charlie", password="pw-charlie-123456")
    TenantMembership.objects.create(tenant=acme, user=bob)
    TenantMembership.objects.create(tenant=birch, user=charlie)
    node = make_node(site=site, n=1, tenant=acme, hostname="acme-pi-1", state="deployed")
    make_node(site=site, n=2, tenant=birch, hostname="birch-pi-1")
    artefact = tmp_path / "disk.img.zst"
    artefact.write_bytes(b"x" * 1000)
    OSImage.objects.create(
        name="raspios",
        arch="arm64",
        source="/x",
        state="ready",
        artefact_path=str(artefact),
        artefact_sha256="a" * 64,
        artefact_size=1000,
    )
    base = live_server.url

    page = browser.new_page()
    _login(page, base, "bob", "pw-bob-123456")
    assert "acme-pi-1" in page.content() and "birch-pi-1" not in page.content()
    _shot(page, "customer-my-boards")
    phone = browser.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{base}/nodes/{node.pk}/")
    # Usable on a phone: nothing wider than the screen, the switch and reinstall reachable.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.is_visible("button:has-text('Boot from network')")
    _shot(phone, "customer-board-phone")
    phone.close()
    page.click("text=acme-pi-1")
    page.wait_for_selector("h1:has-text('acme-pi-1')")
    _shot(page, "customer-board")
    page.fill("#confirm", "wrong-name")
    page.click("text=Reinstall >> nth=-1")
    page.wait_for_selector(".messages .error")
    assert "Type the board's name" in page.inner_text(".messages")
    page.fill("#confirm", "acme-pi-1")
    page.click("button:has-text('Reinstall')")
    page.wait_for_selector("[data-testid=job-status]")
    assert page.inner_text("[data-testid=percent]") == "0"

    # The board's installer, simulated over the real boot endpoints.
    url = live_boot_urls(site)[node.pk].replace("http://127.0.0.1:8000", base).split("?")[0]
    _post(url + "events", {"stage": "writing", "percent": 45})
    page.wait_for_function("document.querySelector('[data-testid=percent]').innerText === '45'", timeout=10000)
    _shot(page, "customer-install-45")
    urllib.request.urlopen(url + "image", timeout=10).read()  # the board fetches the whole image
    _post(url + "done", {})
    page.wait_for_function("document.querySelector('[data-testid=percent]').innerText === '100'", timeout=10000)
    assert page.inner_text("[data-testid=job-status]") == "succeeded"
    _shot(page, "customer-install-done")

    # Customer B (a separate session) cannot reach A's board by URL.
    browser.clear_cookies()
    other = browser.new_page()
    _login(other, base, "charlie", "pw-charlie-123456")
    response = other.goto(f"{base}/nodes/{node.pk}/")
    assert response.status == 404
    _shot(other, "customer-b-404")


def test_operator_pages_render(browser, live_server, django_user_model):
    from provisioning.models import ConfigRevision

    site = make_site()
    node = make_node(site=site, n=1)
    make_node(site=site, n=2, boot_mode="netboot")
    ConfigRevision.objects.create(
        site=site,
        backend="dnsmasq",
        sha256="ab" * 32,
        content="# Generated by pinet. Do not edit.\n",
        status="rejected",
        validator_output="dnsmasq: bad dhcp-range at line 4",
        diff="--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n",
    )
    django_user_model.objects.create_user("admin", password="pw-admin-123456", is_staff=True, is_superuser=True)
    page = browser.new_page()
    _login(page, live_server.url, "admin", "pw-admin-123456")
    for name, path in (
        ("operator-fleet", "/"),
        ("operator-board", f"/nodes/{node.pk}/"),
        ("operator-jobs", "/jobs/"),
        ("operator-config", "/config/"),
        ("operator-config-diff", f"/config/{ConfigRevision.objects.get().pk}/"),
        ("operator-audit", "/audit/"),
        ("operator-images", "/images/"),
        ("operator-status", "/status/"),
        ("operator-admin", "/admin/"),
        ("operator-api-docs", "/api/docs/"),
    ):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        _shot(page, name)
    response = page.goto(live_server.url + "/nodes/999999/")
    assert response.status == 404 and "Nothing here" in page.inner_text("main")
    _shot(page, "error-404")
    # A bulk action from the fleet table: tick both boards, switch them to network boot.
    page.goto(live_server.url + "/")
    page.check("[data-tick-all]")
    page.select_option("#bulk-action", "boot_mode")
    page.select_option("#bulk-boot-mode", "netboot")
    page.fill("#bulk-confirm", "2")
    page.click("#bulk button[type=submit]")
    page.wait_for_selector(".messages li")
    assert "Boot mode changed on 2 board(s): pi-1, pi-2." in page.inner_text(".messages")
    _shot(page, "operator-bulk-done")


def test_operator_uploads_an_image_and_watches_it_import(browser, live_server, django_user_model, tmp_path, settings):
    from images.tests.imagebuilder import build_image, compress, require_tools
    from provisioning.tests.test_worker import _filesystem_broker, broker, worker_process

    require_tools()
    data = tmp_path / "data"
    settings.PINET_IMAGE_ROOT, settings.PINET_NFS_ROOT = data / "images", data / "nfs"
    source = compress(build_image(tmp_path / "src"), "img.xz")
    django_user_model.objects.create_user("admin", password="pw-admin-123456", is_staff=True)
    with broker("filesystem://localhost/", _filesystem_broker(tmp_path)):
        with worker_process(tmp_path, {"PINET_IMPORT_RESERVE_BYTES": "0"}, queue="images") as (proc, log):
            page = browser.new_page()
            _login(page, live_server.url, "admin", "pw-admin-123456")
            page.click("header >> text=Images")
            page.fill("#name", "raspios-lite")
            page.set_input_files("#file", str(source))
            page.click("button:has-text('Import')")
            page.wait_for_selector("td:has-text('raspios-lite')", timeout=20000)
            try:
                page.wait_for_selector("tbody tr:has-text('raspios-lite') .badge.ok", timeout=120000)
            except Exception:
                raise AssertionError(page.inner_text("main")[-1500:] + log.read_text()[-3000:]) from None
            _shot(page, "operator-image-imported")
    image = OSImage.objects.get(name="raspios-lite")
    assert image.state == "ready" and image.artefact_path and image.image_size > 0
    assert not any((data / "images" / ".uploads").glob("*"))  # the upload is removed after the import


def test_operator_adopts_a_discovered_board(browser, live_server, django_user_model):
    from django.utils import timezone

    from nodes.models import DiscoveredBoard, Node

    site = make_site()
    make_tenant("acme")
    now = timezone.now()
    DiscoveredBoard.objects.create(
        site=site,
        mac="dc:a6:32:aa:00:07",
        board_model="pi4b",
        is_pi=True,
        serial="100000009ffefdef",
        revision="00c03111",
        vendor_class="PXEClient:Arch:00000:UNDI:002001",
        arch=0,
        first_seen=now,
        last_seen=now,
        seen_count=5,
    )
    django_user_model.objects.create_user("admin", password="pw-admin-123456", is_staff=True)
    page = browser.new_page()
    _login(page, live_server.url, "admin", "pw-admin-123456")
    page.click("text=1 discovered")
    page.wait_for_selector("td:has-text('dc:a6:32:aa:00:07')")
    _shot(page, "operator-discovered")
    page.click("a:has-text('Adopt')")
    assert page.input_value("#hostname") == "pi4-9ffefdef"
    page.select_option("#tenant", "acme")
    _shot(page, "operator-adopt-form")
    page.click("button:has-text('Adopt')")
    page.wait_for_selector("h1:has-text('pi4-9ffefdef')")
    assert "Adopted dc:a6:32:aa:00:07 as pi4-9ffefdef" in page.inner_text(".messages")
    _shot(page, "operator-adopted-board")
    node = Node.objects.get(hostname="pi4-9ffefdef")
    assert node.tenant.slug == "acme" and node.ip and node.serial == "100000009ffefdef"


def test_fleet_overview_updates_live(browser, live_server, django_user_model, tmp_path):
    from provisioning.services import install_job_event, node_request_reinstall

    site = make_site()
    node = make_node(site=site, n=1, state="deployed")
    artefact = tmp_path / "disk.img.zst"
    artefact.write_bytes(b"x" * 1000)
    image = OSImage.objects.create(
        name="raspios", arch="arm64", source="/x", state="ready", artefact_path=str(artefact), artefact_size=1000
    )
    admin = django_user_model.objects.create_user("admin", password="pw-admin-123456", is_staff=True)
    job = node_request_reinstall(node=node, image=image, by=admin)
    page = browser.new_page()
    _login(page, live_server.url, "admin", "pw-admin-123456")
    page.wait_for_selector("#overview [role=progressbar][aria-valuenow='0']")
    install_job_event(job=job, stage="writing", percent=60)
    page.wait_for_selector("#overview [role=progressbar][aria-valuenow='60']", timeout=15000)
    _shot(page, "operator-fleet-live")
