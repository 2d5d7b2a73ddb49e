import pytest

from pinet.lifecycle import InvalidTransition
from provisioning.choices import ACTIVE, INSTALL_JOB_TRANSITIONS, InstallJobStatus
from provisioning.models import InstallJob
from provisioning.services import boot_token_issue, install_job_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(site):
    from tests.factories import make_image, make_node

    return InstallJob.objects.create(node=make_node(site=site, n=1), image=make_image(state="ready"))


def test_table_covers_every_status():
    assert set(INSTALL_JOB_TRANSITIONS) == set(InstallJobStatus.values)


@pytest.mark.parametrize("start", InstallJobStatus.values)
@pytest.mark.parametrize("to", InstallJobStatus.values)
def test_every_pair_follows_the_table(job, start, to):
    InstallJob.objects.filter(pk=job.pk).update(status=start)
    job.refresh_from_db()
    if to in INSTALL_JOB_TRANSITIONS[start]:
        install_job_transition(job=job, to=to)
        job.refresh_from_db()
        assert job.status == to
        assert (job.started_at is not None) == (to == InstallJobStatus.RUNNING)
        assert (job.finished_at is not None) == (to not in ACTIVE)
    else:
        with pytest.raises(InvalidTransition):
            install_job_transition(job=job, to=to)
        job.refresh_from_db()
        assert job.status == start


def test_finishing_a_job_revokes_its_token(job):
    install_job_transition(job=job, to=InstallJobStatus.RUNNING)
    _token, row = boot_token_issue(job=job)
    install_job_transition(job=job, to=InstallJobStatus.SUCCEEDED)
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_concurrent_writer_loses(job):
    stale = InstallJob.objects.get(pk=job.pk)
    install_job_transition(job=job, to=InstallJobStatus.CANCELLED)
    with pytest.raises(InvalidTransition, match="changed concurrently"):
        install_job_transition(job=stale, to=InstallJobStatus.RUNNING)
