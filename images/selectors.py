from django.db.models import QuerySet

from .models import OSImage


def image_list(*, user) -> QuerySet[OSImage]:
    return OSImage.objects.visible_to(user)
