from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="images.import_image", ignore_result=True)
def import_image_task(image_id: int) -> None:
    from .services import image_import_run, image_recover_stale

    image_recover_stale()
    image_import_run(image_id=image_id)


@shared_task(name="images.recover_imports", ignore_result=True)
def recover_imports_task() -> None:
    from .services import image_recover_stale

    image_recover_stale()


@worker_ready.connect
def _recover_on_start(sender=None, **kwargs) -> None:
    # A worker that was killed mid-import left its image "importing"; the next one to start
    # puts it back in the queue (or fails it after too many attempts).
    from .services import image_recover_stale

    try:
        image_recover_stale()
    except Exception:  # the worker must start even if the database is briefly away
        import logging

        logging.getLogger(__name__).exception("recovering stale imports failed")
