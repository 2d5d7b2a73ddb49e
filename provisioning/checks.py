"""Checks that the DHCP/TFTP daemons pinet drives are installed (ids pinet.provisioning.*)."""

import shutil

from django.core.checks import Warning, register


@register("pinet")
def check_daemon_binaries(app_configs=None, **kwargs):
    # Warnings, not errors: the web host need not run daemons; the site workers must.
    problems = []
    if shutil.which("dnsmasq") is None:
        problems.append(
            Warning(
                "dnsmasq is not installed: sites using the dnsmasq backends cannot be served from this host.",
                hint="apt-get install dnsmasq-base on the site's boot server.",
                id="pinet.provisioning.W001",
            )
        )
    if shutil.which("kea-dhcp4") is None:
        problems.append(
            Warning(
                "kea-dhcp4 is not installed: sites using the Kea backend cannot be served from this host.",
                hint="apt-get install kea-dhcp4-server on the site's boot server.",
                id="pinet.provisioning.W002",
            )
        )
    return problems
