from celery import shared_task


@shared_task(name="provisioning.answer_worker_check", ignore_result=True)
def answer_worker_check_task(check_id: int) -> None:
    from .services import worker_check_answer

    worker_check_answer(check_id=check_id)
