from django.urls import path

from . import views

urlpatterns = [
    path("", views.image_list, name="images-page"),
    path("rows", views.image_rows, name="images-rows"),
    path("import", views.image_import, name="images-import"),
]
