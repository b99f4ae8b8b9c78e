from django.urls import path

from tests.integration.project import views

urlpatterns = [
    path("plain/", views.plain),
    path("slow/", views.slow),
    path("status/", views.status),
    path("stream/<str:kind>/", views.stream),
    path("tricky/", views.tricky),
    path("idle/<str:kind>/", views.idle),
    path("poll/", views.poll),
    path("stuck/", views.stuck),
    path("metrics/", views.metrics),
    path("broadcast/", views.broadcast),
    path("broadcast/publish/", views.broadcast_publish),
    path("broadcast/apublish/", views.broadcast_apublish),
]
