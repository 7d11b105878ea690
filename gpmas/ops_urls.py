from django.urls import path

from gpmas import ops_views

app_name = "ops"

urlpatterns = [
    path("providers/", ops_views.provider_health_page, name="provider-health"),
    path("providers.json", ops_views.provider_health_json, name="provider-health-json"),
]
