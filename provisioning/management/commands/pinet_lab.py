"""Try pinet without hardware: a boot network of simulated Raspberry Pi boards (provisioning/lab)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from provisioning.lab import control
from provisioning.lab.layout import POWER_PARAMS
from provisioning.lab.netns import NetnsError


class Command(BaseCommand):
    help = (
        "up: a lab network (namespaces, pinet's dnsmasq or Kea for site 'lab', boot endpoints, a worker, the "
        "discovery listener) and N simulated Raspberry Pi 4 boards; down: stop it all; status: what runs and what "
        "each board is doing; power: switch a board's outlet by hand. up, down and power need root."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        up = sub.add_parser("up", help="Start the lab (idempotent).")
        up.add_argument("--boards", type=int, default=4, help="Simulated Pi 4 boards (default 4).")
        up.add_argument("--backend", choices=["dnsmasq", "kea"], default="dnsmasq", help="The lab site's DHCP server.")
        up.add_argument("--qemu", action="store_true", help="Also an x86 QEMU machine that PXE-boots through iPXE.")
        down = sub.add_parser("down", help="Stop everything the lab started and delete its namespaces.")
        down.add_argument("--purge", action="store_true", help="Also delete the lab's files (SD cards, logs).")
        sub.add_parser("status", help="Namespaces, processes, boards and URLs.")
        power = sub.add_parser("power", help="Switch a board's outlet on the lab's power strip.")
        power.add_argument("board", help="Its MAC, b<number>, vm (the QEMU machine), or an adopted board's host name.")
        power.add_argument("switch", choices=["on", "off", "cycle", "status"])

    def handle(self, *args, action: str, **options):
        try:
            if action == "up":
                control.up(
                    boards=options["boards"], backend=options["backend"], qemu=options["qemu"], echo=self.stdout.write
                )
                self.stdout.write(control.status_text())
                self.stdout.write(self._next_steps())
            elif action == "down":
                control.down(purge=options["purge"], echo=self.stdout.write)
            elif action == "status":
                self.stdout.write(control.status_text())
            else:
                answer = control.power(board=options["board"], action=options["switch"])
                self.stdout.write(f"{answer['mac']}: power {answer['power']}")
        except (control.LabError, NetnsError) as exc:
            raise CommandError(str(exc)) from exc

    @staticmethod
    def _next_steps() -> str:
        power = json.dumps({"driver": "webhook", "params": POWER_PARAMS})
        return (
            "\nThe boards ask site 'lab' for a network boot: watch them under Discovered in the panel "
            "(bin/quickstart, http://127.0.0.1:8000/ on the same database), adopt them, reinstall, switch boot modes."
            "\nA board reboots into a change when its power is cycled. Give an adopted board the lab's power strip "
            f"(PUT /api/v1/nodes/<id>/power-settings/, or the Node admin):\n  {power}"
            "\nor cycle it by hand: sudo .venv/bin/python manage.py pinet_lab power <board> cycle"
            "\nStop it all with: sudo .venv/bin/python manage.py pinet_lab down [--purge]"
        )
