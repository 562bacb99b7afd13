"""List pagination for the API: page numbers with a caller-chosen page size.

A `page` or `page_size` that is not a positive integer is the caller's mistake: 400 invalid_request naming the
parameter (DRF would answer 404 "Invalid page." for `page=0` and silently ignore `page_size=abc`). A well-formed
page past the last one is 404 not_found: there is no such page. A `page_size` above the maximum is capped.
"""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.pagination import PageNumberPagination

from portal.errors import InvalidRequest, NotFound


def _positive_int(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise InvalidRequest(f"{name} must be a positive integer.", param=name)
    return int(raw)


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        size = _positive_int(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        page_number = _positive_int(request, self.page_query_param) or 1
        self.request = request
        page_size = self.get_page_size(request)
        paginator = self.django_paginator_class(queryset, page_size)
        if page_number > paginator.num_pages:
            raise NotFound(f"No page {page_number}: there are {paginator.num_pages}.")
        self.page = paginator.page(page_number)
        return list(self.page)


# The query parameters every paginated list operation documents (views: `parameters=[..., *PAGINATION_PARAMETERS]`).
PAGINATION_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, required=False, description="Page number, from 1."),
    OpenApiParameter(
        "page_size", {"type": "integer", "minimum": 1}, required=False,
        description=f"Items per page, from 1 (default {Pagination.page_size}; above {Pagination.max_page_size} is capped).",
    ),
]  # fmt: skip
