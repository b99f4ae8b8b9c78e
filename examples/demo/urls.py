from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("progress/", views.progress_page, name="progress"),
    path("progress/stream/", views.progress_stream, name="progress-stream"),
    path("ticker/", views.ticker_page, name="ticker"),
    path("ticker/stream/", views.ticker_stream, name="ticker-stream"),
    path("counter/", views.counter_page, name="counter"),
    path("counter/stream/", views.counter_stream, name="counter-stream"),
    path("shared/", views.shared_page, name="shared"),
    path("shared/stream/", views.shared_stream, name="shared-stream"),
    path("broadcast/", views.broadcast_page, name="broadcast"),
    path("broadcast/stream/", views.broadcast_stream, name="broadcast-stream"),
    path("broadcast/post/", views.broadcast_post, name="broadcast-post"),
    path("broadcast/presence/", views.broadcast_presence, name="broadcast-presence"),
    path("figures/", views.figures_page, name="figures"),
    path("figures/stream/", views.figures_stream, name="figures-stream"),
    path("metrics/", views.metrics_view, name="metrics"),
]
# Serves shared-event-source.js (and only while DEBUG is on).
urlpatterns += staticfiles_urlpatterns()
