"""Template context: the current tenant of a signed-in user (set by the dashboard views)."""


def tenant(request):
    return {"current_tenant": getattr(request, "tenant", None)}
