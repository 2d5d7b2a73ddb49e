"""Database rules that span two tables, so they cannot be CHECK constraints.

- A node's reserved address lies inside its site's subnet and outside the dynamic range.
- A site's dynamic range lies inside its subnet, and changing the subnet or range never
  strands a node's reservation.

They are triggers, installed (idempotently) after every ``migrate``: Django rebuilds SQLite
tables on many schema changes, which drops their triggers, so a migration operation alone
would silently lose them. On SQLite the address arithmetic uses functions registered on
every connection (``register_sqlite_functions``); PostgreSQL has inet/cidr built in.
Violations raise IntegrityError naming the rule, like any constraint.
"""

from __future__ import annotations

import ipaddress

RULE_MESSAGES = {
    "nodes_node_ip_in_subnet": "The reserved address is outside the site's subnet.",
    "nodes_node_ip_outside_dynamic_range": "The reserved address is inside the site's dynamic range.",
    "nodes_site_subnet_valid": "The subnet is not an IPv4 network in CIDR form such as 192.0.2.0/24.",
    "nodes_site_range_in_subnet": "The dynamic range must lie inside the subnet and end after it starts.",
    "nodes_site_keeps_node_addresses": "A node's reserved address would fall outside the subnet or inside the range.",
}

_POSTGRESQL = """
CREATE OR REPLACE FUNCTION pinet_node_ip_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s nodes_site%ROWTYPE;
BEGIN
    IF NEW.ip IS NULL THEN RETURN NEW; END IF;
    -- FOR SHARE: a concurrent change of the site's subnet or range waits for this row.
    SELECT * INTO s FROM nodes_site WHERE id = NEW.site_id FOR SHARE;
    IF NOT (NEW.ip <<= s.subnet::cidr) THEN
        RAISE EXCEPTION 'nodes_node_ip_in_subnet: reserved address % of node % is outside subnet % of site %',
            host(NEW.ip), NEW.hostname, s.subnet, s.slug
            USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_node_ip_in_subnet';
    END IF;
    IF s.range_start IS NOT NULL AND NEW.ip BETWEEN s.range_start AND s.range_end THEN
        RAISE EXCEPTION 'nodes_node_ip_outside_dynamic_range: reserved address % of node % is inside the dynamic range %-% of site %',
            host(NEW.ip), NEW.hostname, host(s.range_start), host(s.range_end), s.slug
            USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_node_ip_outside_dynamic_range';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS nodes_node_ip_rules ON nodes_node;
CREATE TRIGGER nodes_node_ip_rules BEFORE INSERT OR UPDATE OF ip, site_id ON nodes_node
    FOR EACH ROW EXECUTE FUNCTION pinet_node_ip_rules();

CREATE OR REPLACE FUNCTION pinet_site_network_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE net cidr; stranded text;
BEGIN
    BEGIN
        net := NEW.subnet::cidr;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'nodes_site_subnet_valid: subnet % of site % is not a network in CIDR form', NEW.subnet, NEW.slug
            USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_site_subnet_valid';
    END;
    IF family(net) <> 4 THEN
        RAISE EXCEPTION 'nodes_site_subnet_valid: subnet % of site % is not IPv4', NEW.subnet, NEW.slug
            USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_site_subnet_valid';
    END IF;
    IF NEW.range_start IS NOT NULL AND NOT (
        NEW.range_start <<= net AND NEW.range_end <<= net AND NEW.range_start <= NEW.range_end
    ) THEN
        RAISE EXCEPTION 'nodes_site_range_in_subnet: dynamic range %-% of site % is not inside subnet %',
            host(NEW.range_start), host(NEW.range_end), NEW.slug, NEW.subnet
            USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_site_range_in_subnet';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT hostname INTO stranded FROM nodes_node
         WHERE site_id = NEW.id AND ip IS NOT NULL
           AND (NOT ip <<= net OR (NEW.range_start IS NOT NULL AND ip BETWEEN NEW.range_start AND NEW.range_end))
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'nodes_site_keeps_node_addresses: node % of site % would be outside the subnet or inside the range',
                stranded, NEW.slug
                USING ERRCODE = 'check_violation', CONSTRAINT = 'nodes_site_keeps_node_addresses';
        END IF;
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS nodes_site_network_rules ON nodes_site;
CREATE TRIGGER nodes_site_network_rules BEFORE INSERT OR UPDATE OF subnet, range_start, range_end ON nodes_site
    FOR EACH ROW EXECUTE FUNCTION pinet_site_network_rules();
"""

_SQLITE_NODE_BODY = """
WHEN NEW.ip IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'nodes_node_ip_in_subnet: the reserved address is outside the site subnet')
     WHERE (SELECT pinet_ip_in_net(NEW.ip, subnet) FROM nodes_site WHERE id = NEW.site_id) = 0;
    SELECT RAISE(ABORT, 'nodes_node_ip_outside_dynamic_range: the reserved address is inside the site dynamic range')
     WHERE EXISTS (SELECT 1 FROM nodes_site WHERE id = NEW.site_id AND range_start IS NOT NULL
                   AND pinet_ip_int(NEW.ip) BETWEEN pinet_ip_int(range_start) AND pinet_ip_int(range_end));
END;
"""

_SQLITE_SITE_BODY = """
BEGIN
    SELECT RAISE(ABORT, 'nodes_site_subnet_valid: the subnet is not an IPv4 network in CIDR form')
     WHERE pinet_net_valid(NEW.subnet) = 0;
    SELECT RAISE(ABORT, 'nodes_site_range_in_subnet: the dynamic range is not inside the subnet')
     WHERE NEW.range_start IS NOT NULL AND NOT (
        pinet_ip_in_net(NEW.range_start, NEW.subnet) AND pinet_ip_in_net(NEW.range_end, NEW.subnet)
        AND pinet_ip_int(NEW.range_start) <= pinet_ip_int(NEW.range_end));
    {stranded}
END;
"""

_SQLITE_STRANDED = """
    SELECT RAISE(ABORT, 'nodes_site_keeps_node_addresses: a node would be outside the subnet or inside the range')
     WHERE EXISTS (SELECT 1 FROM nodes_node WHERE site_id = NEW.id AND ip IS NOT NULL AND (
        pinet_ip_in_net(ip, NEW.subnet) = 0 OR (NEW.range_start IS NOT NULL
        AND pinet_ip_int(ip) BETWEEN pinet_ip_int(NEW.range_start) AND pinet_ip_int(NEW.range_end))));
"""

_SQLITE = [
    "DROP TRIGGER IF EXISTS nodes_node_ip_rules_insert",
    "CREATE TRIGGER nodes_node_ip_rules_insert BEFORE INSERT ON nodes_node " + _SQLITE_NODE_BODY,
    "DROP TRIGGER IF EXISTS nodes_node_ip_rules_update",
    "CREATE TRIGGER nodes_node_ip_rules_update BEFORE UPDATE OF ip, site_id ON nodes_node " + _SQLITE_NODE_BODY,
    "DROP TRIGGER IF EXISTS nodes_site_network_rules_insert",
    "CREATE TRIGGER nodes_site_network_rules_insert BEFORE INSERT ON nodes_site "
    + _SQLITE_SITE_BODY.format(stranded=""),
    "DROP TRIGGER IF EXISTS nodes_site_network_rules_update",
    "CREATE TRIGGER nodes_site_network_rules_update BEFORE UPDATE OF subnet, range_start, range_end ON nodes_site "
    + _SQLITE_SITE_BODY.format(stranded=_SQLITE_STRANDED),
]


def _ip_int(value):
    try:
        return int(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        return None


def _ip_in_net(ip, net):
    try:
        return int(ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(net, strict=True))
    except (ValueError, TypeError):
        return 0


def _net_valid(net):
    try:
        ipaddress.IPv4Network(net, strict=True)
    except (ValueError, TypeError):
        return 0
    return 1


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """connection_created receiver: give SQLite the address functions the triggers call."""
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("pinet_ip_int", 1, _ip_int, deterministic=True)
    raw.create_function("pinet_ip_in_net", 2, _ip_in_net, deterministic=True)
    raw.create_function("pinet_net_valid", 1, _net_valid, deterministic=True)


def install_rules(sender=None, using: str = "default", **kwargs) -> None:
    """post_migrate receiver: (re)create the triggers; harmless to run any number of times."""
    from django.db import connections

    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if not {"nodes_node", "nodes_site"} <= tables:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_POSTGRESQL)
        elif connection.vendor == "sqlite":
            for statement in _SQLITE:
                cursor.execute(statement)
