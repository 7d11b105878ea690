"""The site's icon: an envelope on the header's dark blue, as SVG (every current browser takes
it); ``/favicon.ico`` sends old clients and crawlers there."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

FAVICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">
<rect width="64" height="64" rx="12" fill="#1d2330"/>
<rect x="12" y="18" width="40" height="28" rx="3" fill="#fff"/>
<path d="M13 20 32 35 51 20" fill="none" stroke="#1d4ed8" stroke-width="4"
 stroke-linejoin="round"/>
</svg>
"""


@require_GET
@cache_control(public=True, max_age=86400)
def favicon_svg(request: HttpRequest) -> HttpResponse:
    return HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
