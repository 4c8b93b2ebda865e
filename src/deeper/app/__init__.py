"""``deeper serve``: a local web app to draw and see what trained models make of it.

- :mod:`deeper.app.models`: the models being served (any task: each answers through its own
  ``predict``, exactly as ``deeper predict`` does on the same image);
- :mod:`deeper.app.runs`: the run folders under ``runs/`` (curves, misclassified gallery,
  layer table, the experiments report);
- :mod:`deeper.app.server`: the Flask application and the waitress server that runs it.

Every script and style is served by the app itself (``static/``): nothing comes from a CDN.
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    if name in __all__:
        from deeper.app import server

        return getattr(server, name)
    raise AttributeError(f"module 'deeper.app' has no attribute {name!r}")
