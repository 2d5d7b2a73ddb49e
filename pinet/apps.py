from django.apps import AppConfig


class PinetConfig(AppConfig):
    name = "pinet"
    verbose_name = "pinet"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
