from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """Liveness for load balancers: the process is up and the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy", never a 500
        return JsonResponse({"status": "error", "database": str(exc).splitlines()[0]}, status=503)
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    """A 404 in the language of the caller: JSON for the API and boot endpoints, a page otherwise."""
    if request.path.startswith(("/api/", "/boot/")):
        return JsonResponse({"detail": "Not found."}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(("/api/", "/boot/")):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    from django.views.defaults import server_error as default

    return default(request)
