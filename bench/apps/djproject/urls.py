"""One URL per Django row; the views import their library lazily."""

from django.urls import path

from djproject import views

urlpatterns = [
    path("plain/", views.plain),
    path("sse-async/", views.sse_async),
    path("sse-sync/", views.sse_sync),
    path("djblets/", views.djblets),
    path("eventstream/", views.eventstream),
    path("eventstream-publish/", views.eventstream_publish),
    path("fanout/", views.fanout),
    path("fanout/idle/", views.fanout_idle),
    path("fanout/count/", views.fanout_count),
    path("fanout/open/", views.fanout_open),
    path("fanout/eventstream-count/", views.eventstream_count),
    path("fanout/publish/", views.fanout_publish),
    path("channels/<int:i>/", views.channel),
    path("channels/publish/", views.channels_publish),
    path("channels/eventstream/<int:i>/", views.eventstream_channel),
    path("channels/eventstream-count/", views.eventstream_listeners),
]
