"""pinet's lab: a boot network of simulated Raspberry Pi boards in private network namespaces
(``manage.py pinet_lab up|down|status``), and the DHCP/TFTP client they are made of.

The modules here other than ``control`` use only the standard library: ``probe`` and ``sim``
run inside namespaces as plain programs, without Django."""
