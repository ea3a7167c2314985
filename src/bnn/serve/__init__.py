"""`bnn serve`: an HTTP service and a draw-a-digit page (``pip install 'bitexact-bnn[serve]'``).

>>> from bnn.serve import create_app
>>> app = create_app({"lfcW1A1": bnn.Classifier("lfcW1A1", "mnist")})   # any ASGI server runs it
"""

from __future__ import annotations

from ..errors import MissingExtraError

try:
    import starlette  # noqa: F401
except ImportError:
    raise MissingExtraError("the service needs Starlette and uvicorn: pip install 'bitexact-bnn[serve]'") from None

from .app import Batcher, create_app

__all__ = ["Batcher", "create_app"]
