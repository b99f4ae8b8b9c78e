from django.urls import path

from tests.integration.project import views

urlpatterns = [
    path("plain/", views.plain),
    path("status/", views.status),
    path("stream/<str:kind>/", views.stream),
    path("tricky/", views.tricky),
    path("broadcast/", views.broadcast),
    path("broadcast/publish/", views.broadcast_publish),
    path("broadcast/apublish/", views.broadcast_apublish),
]
