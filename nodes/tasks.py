from celery import shared_task


@shared_task(bind=True, name="nodes.deliver_webhook", ignore_result=True, max_retries=None)
def deliver_webhook_task(self, delivery_id: int) -> None:
    from .webhooks import webhook_deliver

    wait = webhook_deliver(delivery_id=delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(bind=True, name="nodes.run_power_action", ignore_result=True, max_retries=None)
def run_power_action_task(self, action_id: int) -> None:
    from .power.services import power_action_run

    wait = power_action_run(action_id=action_id)
    if wait is not None:
        # Waiting for the site's DHCP change to land; power_action_run bounds the wait.
        raise self.retry(countdown=wait)
