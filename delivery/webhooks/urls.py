from django.urls import path

from delivery.webhooks.views import tracking_webhook

urlpatterns = [
    path("<slug:provider>/tracking/", tracking_webhook, name="tracking_webhook"),
]
