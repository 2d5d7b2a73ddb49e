from celery import shared_task


@shared_task(name="provisioning.answer_worker_check", ignore_result=True)
def answer_worker_check_task(check_id: int) -> None:
    from .services import worker_check_answer

    worker_check_answer(check_id=check_id)


@shared_task(bind=True, name="provisioning.apply_site_config", max_retries=5, ignore_result=True)
def apply_site_config_task(self, site_id: int) -> None:
    from .dhcp import DaemonError
    from .services import site_config_apply_pending

    try:
        site_config_apply_pending(site_id=site_id)
    except DaemonError as exc:
        raise self.retry(exc=exc, countdown=10) from exc


@shared_task(name="provisioning.expire_install_jobs", ignore_result=True)
def expire_install_jobs_task() -> None:
    from .services import install_jobs_expire

    install_jobs_expire()
