from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class NodesConfig(AppConfig):
    name = "nodes"
    verbose_name = "Nodes and tenants"

    def ready(self) -> None:
        from . import checks, dbrules  # noqa: F401  (checks registers the system checks)

        connection_created.connect(dbrules.register_sqlite_functions, dispatch_uid="pinet_sqlite_functions")
        post_migrate.connect(dbrules.install_rules, sender=self, dispatch_uid="pinet_install_db_rules")
