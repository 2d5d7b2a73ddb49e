from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "OS images"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
