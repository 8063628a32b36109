"""Where the capture connects and lands, from settings and the environment (read when
a capture or a run starts, never at import).

``M17_STOCKS_WS_URL`` / ``M17_OPTIONS_WS_URL`` point the capture at another server
(e.g. ``ws://127.0.0.1:9000/stocks`` for ``m17 replay serve``); ``M17_REST_BASE_URL``
moves the contract reference REST calls the same way; ``M17_LANDING_ROOT`` moves the
landing zone. The API key is ``POLYGON_API_KEY`` (or ``MASSIVE_API_KEY``); it is only ever sent to the server,
never logged or written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from m17_platform.settings import DEFAULT, CaptureSettings
from m17_platform.sources.polygon import (
    API_KEY_ENV,
    API_KEY_HINT,
    BASE_URL_ENV,
    api_key_from_env,
)

STOCKS_URL_ENV = "M17_STOCKS_WS_URL"
OPTIONS_URL_ENV = "M17_OPTIONS_WS_URL"
LANDING_ROOT_ENV = "M17_LANDING_ROOT"
__all__ = ["API_KEY_ENV", "API_KEY_HINT", "BASE_URL_ENV", "landing_root", "ws_urls", "rest_base_url", "api_key"]


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def landing_root(configured: str | Path | None = None, environ: Mapping[str, str] | None = None,
                 settings: CaptureSettings = DEFAULT.capture) -> Path:
    """The landing root: ``configured`` if given, else ``$M17_LANDING_ROOT``, else the setting."""
    return Path(configured or _env(environ).get(LANDING_ROOT_ENV) or settings.landing_root)


def ws_urls(environ: Mapping[str, str] | None = None, settings: CaptureSettings = DEFAULT.capture) -> dict[str, str]:
    """Feed name -> websocket URL (``stocks``, ``options``), environment first."""
    env = _env(environ)
    return {
        "stocks": env.get(STOCKS_URL_ENV) or settings.stocks_ws_url,
        "options": env.get(OPTIONS_URL_ENV) or settings.options_ws_url,
    }


def rest_base_url(environ: Mapping[str, str] | None = None) -> str:
    """REST base for the contract reference: ``$M17_REST_BASE_URL``, else Polygon's."""
    return _env(environ).get(BASE_URL_ENV) or DEFAULT.polygon.rest_base_url


def api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """``$POLYGON_API_KEY``, else ``$MASSIVE_API_KEY`` (None when neither is set)."""
    return api_key_from_env(_env(environ))
