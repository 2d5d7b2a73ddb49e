"""PoE switch port over SNMP (v2c, or v3 with authentication and privacy).

Switching the port's power off and on again is a hard reset for a PoE-powered Pi. The
standard is POWER-ETHERNET-MIB (RFC 3621): pethPsePortAdminEnable.<group>.<port> takes
true(1) or false(2), and pethPsePortDetectionStatus says whether the port delivers power.
Vendors that use their own MIB instead are rows of VENDORS; "custom" takes the OIDs from the
node's parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodes.choices import PowerState

from .base import Driver, Params, PowerError, PowerResult

ON, OFF, UNKNOWN = PowerState.ON, PowerState.OFF, PowerState.UNKNOWN

PETH_PSE_PORT_ADMIN_ENABLE = "1.3.6.1.2.1.105.1.1.1.3"
PETH_PSE_PORT_DETECTION_STATUS = "1.3.6.1.2.1.105.1.1.1.6"
# pethPsePortDetectionStatus: "searching" is a port with power enabled and nothing drawing it,
# which for a board we control means it is off (or unplugged).
_DETECTION = {
    1: ("disabled", OFF),
    2: ("searching", OFF),
    3: ("deliveringPower", ON),
    4: ("fault", UNKNOWN),
    5: ("test", UNKNOWN),
    6: ("otherFault", UNKNOWN),
}


@dataclass(frozen=True)
class VendorOids:
    """How one vendor's MIB switches a PoE port. Each OID is a table column: the port's
    index ("<group>.<port>" or "<port>", see ``index``) is appended to it."""

    label: str
    admin_oid: str | None  # None: this vendor cannot switch PoE over SNMP at all
    on_value: int | None
    off_value: int | None
    status_oid: str | None
    status_map: Mapping[int, tuple[str, str]] = field(default_factory=dict)  # value -> (name, PowerState)
    index: str = "group.port"
    source: str = ""
    # documented: the numeric OID and values are written out in the vendor's MIB or an RFC.
    # derived: the MIB defines the object relative to a parent; the numeric OID is assembled
    #          from its definitions (not yet confirmed on the hardware by us).
    confidence: str = "documented"
    note: str = ""


_STANDARD = {
    "admin_oid": PETH_PSE_PORT_ADMIN_ENABLE,
    "on_value": 1,
    "off_value": 2,
    "status_oid": PETH_PSE_PORT_DETECTION_STATUS,
    "status_map": _DETECTION,
}

VENDORS: dict[str, VendorOids] = {
    "standard": VendorOids(
        label="POWER-ETHERNET-MIB (RFC 3621)",
        **_STANDARD,
        source="RFC 3621: pethPsePortAdminEnable ::= { pethPsePortEntry 3 }, TruthValue; "
        "pethPsePortDetectionStatus ::= { pethPsePortEntry 6 }",
    ),
    "cisco": VendorOids(
        label="CISCO-POWER-ETHERNET-EXT-MIB",
        admin_oid="1.3.6.1.4.1.9.9.402.1.2.1.1",
        on_value=1,  # auto
        off_value=4,  # disable
        status_oid=PETH_PSE_PORT_DETECTION_STATUS,
        status_map=_DETECTION,
        source="CISCO-POWER-ETHERNET-EXT-MIB: cpeExtPsePortEnable ::= { cpeExtPsePortEntry 1 } "
        "(1.3.6.1.4.1.9.9.402.1.2.1.1), auto(1) static(2) limit(3) disable(4); the entry AUGMENTS "
        "pethPsePortEntry, so it is indexed by <group>.<port>",
        note="Catalyst IOS also accepts the standard column; use this when it does not.",
    ),
    "hpe-aruba": VendorOids(
        label="HP ProCurve / ArubaOS-Switch (standard MIB)",
        **_STANDARD,
        source="HP-ICF-POE-MIB only AUGMENTS pethPsePortEntry with extra columns; port power is the "
        "standard pethPsePortAdminEnable",
        confidence="derived",
    ),
    "netgear": VendorOids(
        label="Netgear managed switches (standard MIB)",
        **_STANDARD,
        source="NETGEAR-POWER-ETHERNET-MIB AUGMENTS pethPsePortEntry; port power is the standard "
        "pethPsePortAdminEnable, written with snmpset by Pi-cluster projects on S3300 switches",
        confidence="derived",
    ),
    "tp-link": VendorOids(
        label="TPLINK-POWER-OVER-ETHERNET-MIB",
        admin_oid="1.3.6.1.4.1.11863.6.56.1.1.2.1.1.2",
        on_value=1,  # enable
        off_value=0,  # disable
        status_oid="1.3.6.1.4.1.11863.6.56.1.1.2.1.1.11",
        status_map={
            0: ("off", OFF),
            1: ("turning-on", ON),
            2: ("on", ON),
            3: ("overload", UNKNOWN),
            4: ("short", UNKNOWN),
            5: ("nonstandard-pd", UNKNOWN),
            6: ("voltage-high", UNKNOWN),
            7: ("voltage-low", UNKNOWN),
            8: ("hardware-fault", UNKNOWN),
            9: ("overtemperature", UNKNOWN),
        },
        index="port",
        source="TPLINK-POWER-OVER-ETHERNET-MIB ::= { tplinkMgmt 56 } (tplinkMgmt = 1.3.6.1.4.1.11863.6): "
        "tpPoePortStatus ::= { tpPoePortConfigEntry 2 } disable(0)/enable(1), tpPoePowerStatus ::= "
        "{ tpPoePortConfigEntry 11 }, indexed by tpPoePortIndex (the front-panel port number)",
        confidence="derived",
    ),
    "mikrotik": VendorOids(
        label="MIKROTIK-MIB (status only)",
        admin_oid=None,
        on_value=None,
        off_value=None,
        status_oid="1.3.6.1.4.1.14988.1.1.15.1.1.3",
        status_map={1: ("disabled", OFF), 2: ("waitingForLoad", OFF), 3: ("poweredOn", ON), 4: ("overload", UNKNOWN)},
        index="port",
        source="MIKROTIK-MIB: mtxrPOEStatus ::= { mtxrPOEEntry 3 } (mtxrPOE = mtXRouterOs 15, "
        "mtXRouterOs = 1.3.6.1.4.1.14988.1.1), read-only, indexed by the interface's ifIndex",
        confidence="derived",
        note="RouterOS does not switch PoE over SNMP: use the webhook driver with the RouterOS REST API.",
    ),
}
CUSTOM = "custom"

_OID = r"\.?[0-2](\.[0-9]{1,10}){1,127}"
_AUTH = {"MD5": "usmHMACMD5AuthProtocol", "SHA": "usmHMACSHAAuthProtocol", "SHA224": "usmHMAC128SHA224AuthProtocol"}
_AUTH |= {"SHA256": "usmHMAC192SHA256AuthProtocol", "SHA384": "usmHMAC256SHA384AuthProtocol"}
_AUTH |= {"SHA512": "usmHMAC384SHA512AuthProtocol"}
_PRIV = {"DES": "usmDESPrivProtocol", "AES": "usmAesCfb128Protocol", "AES192": "usmAesCfb192Protocol"}
_PRIV |= {"AES256": "usmAesCfb256Protocol"}
# pysnmp's error indications (pysnmp.proto.errind) that mean the v3 credentials are wrong.
_V3_AUTH_FAILURES = frozenset(
    {
        "WrongDigest",
        "UnknownUserName",
        "UnknownSecurityName",
        "DecryptionError",
        "UnsupportedSecurityLevel",
        "AuthenticationFailure",
        "AuthenticationError",
        "UnsupportedAuthProtocol",
        "UnsupportedPrivProtocol",
    }
)


class SnmpPoeDriver(Driver):
    name = "snmp-poe"
    secret_fields = ("community", "auth_key", "priv_key")
    secret_uses = {"community": "version 2c", "auth_key": "version 3", "priv_key": "version 3"}

    @classmethod
    def clean(cls, *, params: dict, secrets: dict) -> tuple[dict, dict]:
        allowed = (
            "host udp_port version vendor pse_group pse_port user auth_protocol priv_protocol context retries "
            "timeout cycle_delay admin_oid on_value off_value status_oid status_on status_off index"
        ).split()
        p = Params(params, allowed=allowed, secrets=cls.secret_fields)
        p.host("host", required="Required: the switch's management address.")
        p.integer("udp_port", minimum=1, maximum=65535)
        version = p.choice("version", ["2c", "3"], default="2c")
        vendor = p.choice("vendor", [*VENDORS, CUSTOM], default="standard")
        p.integer("pse_group", minimum=1, maximum=65535)
        p.integer(
            "pse_port",
            minimum=1,
            maximum=2**31 - 1,
            required="Required: the board's PoE port (pethPsePortIndex, or the index the vendor's MIB uses).",
        )
        p.integer("retries", minimum=0, maximum=5)
        p.timing()
        if vendor == CUSTOM:
            hint = "A numeric OID such as 1.3.6.1.2.1.105.1.1.1.3 (the port's index is appended)."
            p.text("admin_oid", required="Required for vendor custom: the column that switches power.", pattern=_OID)
            p.text("status_oid", pattern=_OID, hint=hint)
            p.integer("on_value", minimum=-(2**31), maximum=2**31 - 1, required="Required for vendor custom.")
            p.integer("off_value", minimum=-(2**31), maximum=2**31 - 1, required="Required for vendor custom.")
            p.choice("index", ["group.port", "port"], default="group.port")
            for key in ("status_on", "status_off"):
                values = p.data.get(key)
                if values is not None:
                    if isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                        p.clean[key] = values
                    else:
                        p.error(key, "A list of whole numbers: the status values that mean this.")
            for key in ("admin_oid", "status_oid"):
                if key in p.clean:
                    p.clean[key] = p.clean[key].lstrip(".")
        else:
            for key in ("admin_oid", "status_oid", "on_value", "off_value", "status_on", "status_off", "index"):
                if key in p.data:
                    p.error(key, f"Only for vendor custom; vendor {vendor} has its OIDs built in.")
        clean_secrets: dict[str, str] = {}
        if version == "2c":
            community = secrets.get("community")
            if not community:
                p.error("community", "Required for SNMP v2c: the switch's read-write community.")
            elif not isinstance(community, str) or len(community) > 255:
                p.error("community", "A string of at most 255 characters.")
            else:
                clean_secrets["community"] = community
            for key in ("user", "auth_protocol", "priv_protocol", "context"):
                if key in p.data:
                    p.error(key, "Only for SNMP v3.")
        else:
            p.text("user", required="Required for SNMP v3: the USM user name.", max_length=32)
            p.choice("auth_protocol", list(_AUTH), default="SHA")
            p.choice("priv_protocol", list(_PRIV), default="AES")
            p.text("context", max_length=64)
            for key in ("auth_key", "priv_key"):
                value = secrets.get(key)
                # RFC 3414 2.6: a pass phrase shorter than 8 characters is not a pass phrase.
                if not isinstance(value, str) or not 8 <= len(value) <= 255:
                    p.error(key, "Required for SNMP v3 (authPriv): 8 to 255 characters.")
                else:
                    clean_secrets[key] = value
        unknown = set(secrets) - set(cls.secret_fields)
        for key in sorted(unknown):
            p.error(key, f"Not a secret of this driver; it takes: {', '.join(cls.secret_fields)}.")
        return p.done(), clean_secrets

    # --- what the parameters mean

    @property
    def vendor(self) -> VendorOids:
        name = self.params.get("vendor", "standard")
        if name != CUSTOM:
            return VENDORS[name]
        on, off = set(self.params.get("status_on", [])), set(self.params.get("status_off", []))
        status_map = {v: (str(v), ON) for v in on} | {v: (str(v), OFF) for v in off}
        return VendorOids(
            label="custom OIDs",
            admin_oid=self.params["admin_oid"],
            on_value=self.params["on_value"],
            off_value=self.params["off_value"],
            status_oid=self.params.get("status_oid"),
            status_map=status_map,
            index=self.params.get("index", "group.port"),
        )

    @property
    def index(self) -> str:
        port = self.params["pse_port"]
        return f"{self.params.get('pse_group', 1)}.{port}" if self.vendor.index == "group.port" else str(port)

    @property
    def endpoint(self) -> str:
        host = self.params["host"]
        return f"[{host}]:{self.udp_port}" if ":" in host else f"{host}:{self.udp_port}"

    @property
    def udp_port(self) -> int:
        return int(self.params.get("udp_port", 161))

    @property
    def retries(self) -> int:
        return int(self.params.get("retries", 1))

    # --- the actions

    def _switch(self, on: bool) -> PowerResult:
        vendor = self.vendor
        if vendor.admin_oid is None:
            raise PowerError(f"{vendor.label} cannot switch PoE over SNMP. {vendor.note}")
        value = vendor.on_value if on else vendor.off_value
        oid = f"{vendor.admin_oid}.{self.index}"
        self._exchange(set_values=[(oid, value)])
        return PowerResult(state=ON if on else OFF, detail=f"{oid} set to {value} on {self.endpoint}")

    def on(self) -> PowerResult:
        return self._switch(True)

    def off(self) -> PowerResult:
        return self._switch(False)

    def status(self) -> PowerResult:
        vendor = self.vendor
        oids = [f"{o}.{self.index}" for o in (vendor.admin_oid, vendor.status_oid) if o]
        values = dict(zip(oids, self._exchange(get_oids=oids), strict=True))
        details = []
        state = UNKNOWN
        if vendor.status_oid:
            raw = values[f"{vendor.status_oid}.{self.index}"]
            name, state = vendor.status_map.get(raw, (f"unexpected value {raw}", UNKNOWN))
            details.append(f"detection {name}({raw})")
        if vendor.admin_oid:
            raw = values[f"{vendor.admin_oid}.{self.index}"]
            admin = {vendor.on_value: "enabled", vendor.off_value: "disabled"}.get(raw, f"value {raw}")
            details.insert(0, f"port power {admin}")
            if raw == vendor.off_value:
                state = OFF  # whatever the detection says, power is switched off
            elif raw == vendor.on_value and not vendor.status_oid:
                state = ON
        return PowerResult(state=state, detail="; ".join(details))

    # --- the wire

    def _exchange(self, *, set_values: list[tuple[str, int]] | None = None, get_oids: list[str] | None = None):
        """One SET or GET round trip; returns the integer values, or raises PowerError saying
        what to check."""
        return asyncio.run(self._exchange_async(set_values=set_values, get_oids=get_oids))

    async def _exchange_async(self, *, set_values, get_oids) -> list[int]:
        from pysnmp.error import PySnmpError
        from pysnmp.hlapi.v3arch import asyncio as snmp

        engine = snmp.SnmpEngine()
        try:
            transport = snmp.Udp6TransportTarget if ":" in self.params["host"] else snmp.UdpTransportTarget
            try:
                target = await transport.create(
                    (self.params["host"], self.udp_port), timeout=self.timeout, retries=self.retries
                )
            except PySnmpError as exc:
                raise PowerError(f"Cannot reach the switch {self.params['host']}: {exc}. Check host.") from None
            if self.params.get("version", "2c") == "3":
                auth: Any = snmp.UsmUserData(
                    self.params["user"],
                    authKey=self.secrets.get("auth_key"),
                    privKey=self.secrets.get("priv_key"),
                    authProtocol=getattr(snmp, _AUTH[self.params.get("auth_protocol", "SHA")]),
                    privProtocol=getattr(snmp, _PRIV[self.params.get("priv_protocol", "AES")]),
                )
                context = snmp.ContextData(contextName=self.params.get("context", ""))
            else:
                # v2c is what most PoE switches in Pi racks speak; v3 is there for those that can.
                auth = snmp.CommunityData(self.secrets.get("community", ""), mpModel=1)  # noqa: S508
                context = snmp.ContextData()
            if set_values is not None:
                var_binds = [snmp.ObjectType(snmp.ObjectIdentity(oid), snmp.Integer(v)) for oid, v in set_values]
                reply = await snmp.set_cmd(engine, auth, target, context, *var_binds)
            else:
                var_binds = [snmp.ObjectType(snmp.ObjectIdentity(oid)) for oid in get_oids]
                reply = await snmp.get_cmd(engine, auth, target, context, *var_binds)
        finally:
            engine.close_dispatcher()
        return self._check(reply, writing=set_values is not None, asked=set_values or get_oids)

    def _check(self, reply, *, writing: bool, asked) -> list[int]:
        from pysnmp.hlapi.v3arch import asyncio as snmp

        error_indication, error_status, error_index, var_binds = reply
        v3 = self.params.get("version", "2c") == "3"
        if error_indication:
            text = str(error_indication)
            if "timeout" in text.lower() or "no snmp response" in text.lower():
                credentials = (
                    "the v3 user, keys and protocols"
                    if v3
                    else "the community (a switch silently ignores a wrong community)"
                )
                tries = self.retries + 1
                raise PowerError(
                    f"No SNMP answer from {self.endpoint} within {self.timeout:g} s ({tries} "
                    f"{'try' if tries == 1 else 'tries'}): check host and udp_port, that SNMP is enabled on the "
                    f"switch and accepts this server, and {credentials}."
                )
            if type(error_indication).__name__ in _V3_AUTH_FAILURES:
                raise PowerError(
                    f"SNMPv3 authentication with {self.endpoint} failed ({text}): check user, auth_key, priv_key, "
                    "auth_protocol and priv_protocol."
                )
            raise PowerError(f"SNMP request to {self.endpoint} failed: {text}.")
        if error_status:
            status = error_status.prettyPrint()
            position = int(error_index) - 1 if error_index else 0
            oid = str(asked[position][0] if writing else asked[position]) if 0 <= position < len(asked) else "?"
            vendor = self.vendor
            if writing and status in ("wrongValue", "wrongType", "inconsistentValue", "badValue"):
                raise PowerError(
                    f"The switch {self.endpoint} rejected the value written to {oid} ({status}): the on/off values "
                    f"differ between MIBs; check vendor (now {self.params.get('vendor', 'standard')})."
                )
            if writing:
                raise PowerError(
                    f"The switch {self.endpoint} refused to write {oid} ({status}): the "
                    f"{'v3 user' if v3 else 'community'} may be read-only, or the switch does not implement "
                    f"{vendor.label} for port {self.index}; check the SNMP write access, vendor, pse_group and "
                    "pse_port."
                )
            raise PowerError(f"The switch {self.endpoint} answered {status} for {oid}: check vendor and pse_port.")
        values = []
        for oid, value in var_binds:
            if writing and isinstance(value, (snmp.NoSuchObject, snmp.NoSuchInstance, snmp.EndOfMibView)):
                raise PowerError(
                    f"The switch {self.endpoint} refused to write {oid} ({value.__class__.__name__}): the "
                    f"{'v3 user' if v3 else 'community'} may be read-only, or the switch has no PoE port "
                    f"{self.index} in {self.vendor.label}; check the SNMP write access, vendor, pse_group and pse_port."
                )
            if isinstance(value, (snmp.NoSuchObject, snmp.NoSuchInstance, snmp.EndOfMibView)):
                raise PowerError(
                    f"The switch {self.endpoint} has no {oid} ({value.__class__.__name__}): it has no PoE port "
                    f"{self.index} in {self.vendor.label}; check vendor, pse_group and pse_port."
                )
            try:
                values.append(int(value))
            except (TypeError, ValueError):
                raise PowerError(
                    f"The switch {self.endpoint} answered {value.prettyPrint()!r} for {oid}, "
                    "not a number: check vendor."
                ) from None
        return values
