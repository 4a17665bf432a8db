"""The service's routes: one module per resource, each with a ``router()`` that builds its
:class:`fastapi.APIRouter` (nothing is built at import time)."""
