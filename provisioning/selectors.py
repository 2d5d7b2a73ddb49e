from django.db.models import QuerySet

from .models import InstallJob, WorkerCheck


def install_job_list(*, user) -> QuerySet[InstallJob]:
    return InstallJob.objects.visible_to(user).select_related("node", "image", "requested_by")


def worker_check_get(*, user, pk: int) -> WorkerCheck:
    if not (user and user.is_authenticated and user.is_staff):
        raise WorkerCheck.DoesNotExist
    return WorkerCheck.objects.get(pk=pk)
