"""``emofuse serve``: the analysis over HTTP (``pip install emofuse[serve]``: FastAPI + uvicorn).

* ``app.py`` — ``ServeOptions`` and ``create_app``: the routes (``/healthz``, ``/readyz``, ``/v1/models``,
  ``POST /v1/analyze``), the models loaded once per worker, admission (a bounded queue, then 429), the request
  timeout, the optional bearer token; ``run`` starts uvicorn.
* ``limits.py`` — what the routes share and that needs no web framework: the body-size guard (an ASGI wrapper
  that refuses an oversized upload before it is read whole), the admission gate, upload names.

Nothing here imports FastAPI until a server is built, so ``import emofuse`` stays light.
"""

from __future__ import annotations

__all__ = ["ServeOptions", "create_app", "run"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
