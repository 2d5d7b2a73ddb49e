import pytest

from nodes.choices import POWER_ACTION_TRANSITIONS, PowerActionStatus
from nodes.models import PowerAction
from pinet.lifecycle import InvalidTransition, transition
from tests.factories import make_node

pytestmark = pytest.mark.django_db


def test_table_covers_every_status():
    assert set(POWER_ACTION_TRANSITIONS) == set(PowerActionStatus.values)
    for targets in POWER_ACTION_TRANSITIONS.values():
        assert targets <= set(PowerActionStatus.values)


@pytest.mark.parametrize("start", PowerActionStatus.values)
@pytest.mark.parametrize("to", PowerActionStatus.values)
def test_every_pair_follows_the_table(site, start, to):
    node = make_node(site=site, n=1)
    row = PowerAction.objects.create(node=node, action="cycle", driver="webhook", status=start)
    if to in POWER_ACTION_TRANSITIONS[start]:
        transition(obj=row, table=POWER_ACTION_TRANSITIONS, to=to)
        assert PowerAction.objects.get(pk=row.pk).status == to
    else:
        with pytest.raises(InvalidTransition):
            transition(obj=row, table=POWER_ACTION_TRANSITIONS, to=to)
        assert PowerAction.objects.get(pk=row.pk).status == start


def test_two_workers_cannot_both_start_it(site):
    node = make_node(site=site, n=1)
    row = PowerAction.objects.create(node=node, action="cycle", driver="webhook")
    stale = PowerAction.objects.get(pk=row.pk)
    transition(obj=row, table=POWER_ACTION_TRANSITIONS, to=PowerActionStatus.RUNNING)
    with pytest.raises(InvalidTransition, match="changed concurrently"):
        transition(obj=stale, table=POWER_ACTION_TRANSITIONS, to=PowerActionStatus.RUNNING)
