from celery import shared_task


@shared_task(bind=True, name="nodes.deliver_webhook", ignore_result=True, max_retries=None)
def deliver_webhook_task(self, delivery_id: int) -> None:
    from .webhooks import webhook_deliver

    wait = webhook_deliver(delivery_id=delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)
