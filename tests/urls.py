from django.urls import path

from tests import views

urlpatterns = [
    path("stream/<str:key>/", views.stream),
    path("astream/<str:key>/", views.astream),
    path("plain/", views.plain),
]
