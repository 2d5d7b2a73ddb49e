import pytest

from nodes.choices import NODE_TRANSITIONS, NodeState
from nodes.models import AuditLog, Node
from nodes.services import node_transition
from pinet.lifecycle import InvalidTransition
from tests.factories import make_node

pytestmark = pytest.mark.django_db


def test_table_covers_every_state():
    assert set(NODE_TRANSITIONS) == set(NodeState.values)
    for targets in NODE_TRANSITIONS.values():
        assert targets <= set(NodeState.values)


@pytest.mark.parametrize("start", NodeState.values)
@pytest.mark.parametrize("to", NodeState.values)
def test_every_pair_follows_the_table(site, start, to):
    node = make_node(site=site, n=1, state=start)
    if to in NODE_TRANSITIONS[start]:
        node_transition(node=node, to=to, by=None)
        assert Node.objects.get(pk=node.pk).state == to
        assert AuditLog.objects.filter(action="node.state", data__to=to).exists()
    else:
        with pytest.raises(InvalidTransition):
            node_transition(node=node, to=to, by=None)
        assert Node.objects.get(pk=node.pk).state == start


def test_stale_copy_loses_the_race(site):
    node = make_node(site=site, n=1, state=NodeState.READY)
    stale = Node.objects.get(pk=node.pk)
    node_transition(node=node, to=NodeState.SUSPENDED, by=None)
    with pytest.raises(InvalidTransition, match="changed concurrently"):
        node_transition(node=stale, to=NodeState.INSTALLING, by=None)
    assert Node.objects.get(pk=node.pk).state == NodeState.SUSPENDED
