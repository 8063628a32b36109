"""The streaming capture as a Dagster resource: where it connects, how it batches, and
what it has landed (a thin wrapper over :mod:`m17_platform.capture`).

Empty strings mean "resolve when used": ``landing_root`` is ``$M17_LANDING_ROOT``, else
``CaptureSettings.landing_root``; the websocket URLs are ``$M17_STOCKS_WS_URL`` /
``$M17_OPTIONS_WS_URL``, else the settings (:mod:`m17_platform.capture.config`). Nothing is
read from the environment at import. The ``capture_batches`` sensor and the ``end_of_day``
schedule read the landing zone's manifest through :meth:`CaptureResource.entries`.
"""

from dataclasses import replace
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from m17_platform.capture import config
from m17_platform.capture.landing import BatchEntry, Gap, read_gaps, read_manifest
from m17_platform.settings import DEFAULT, CaptureSettings

_CAPTURE = DEFAULT.capture


class CaptureResource(ConfigurableResource):
    """The capture's landing zone and its tunable settings.

    landing_root : the landing zone (manifest, batches, gaps); empty: ``$M17_LANDING_ROOT``,
        else ``CaptureSettings.landing_root``.
    stocks_ws_url / options_ws_url : websocket endpoints; empty: ``$M17_STOCKS_WS_URL`` /
        ``$M17_OPTIONS_WS_URL``, else the settings.
    strikes_each_side, recenter_dollars, recenter_seconds, batch_seconds, batch_events :
        the :class:`~m17_platform.settings.CaptureSettings` of the same names (units in
        their descriptions).
    """

    landing_root: str = Field(
        default="",
        description="capture landing zone: manifest.jsonl, batches/, gaps.jsonl "
        "(empty: $M17_LANDING_ROOT, else CaptureSettings.landing_root, data/landing)",
    )
    stocks_ws_url: str = Field(
        default="", description="stocks websocket URL (empty: $M17_STOCKS_WS_URL, else CaptureSettings.stocks_ws_url)"
    )
    options_ws_url: str = Field(
        default="", description="options websocket URL (empty: $M17_OPTIONS_WS_URL, else CaptureSettings.options_ws_url)"
    )
    strikes_each_side: int = Field(
        default=_CAPTURE.strikes_each_side,
        ge=0,
        description="strike window: the ATM strike plus this many listed strikes above and below, calls and puts "
        "(count; 3 gives 7 strikes, 14 contracts)",
    )
    recenter_dollars: float = Field(
        default=_CAPTURE.recenter_dollars,
        gt=0,
        description="re-centre the strike window when the underlying moved more than this from its last centre (dollars)",
    )
    recenter_seconds: float = Field(
        default=_CAPTURE.recenter_seconds,
        gt=0,
        description="re-centre at least this often, in event time of the underlying's feed (seconds)",
    )
    batch_seconds: float = Field(
        default=_CAPTURE.batch_seconds,
        gt=0,
        description="write a micro-batch at least this often while events arrive (seconds, wall clock)",
    )
    batch_events: int = Field(
        default=_CAPTURE.batch_events,
        gt=0,
        description="... or as soon as a micro-batch holds this many events (events)",
    )

    def root(self) -> Path:
        """The landing root: config, else ``$M17_LANDING_ROOT``, else the setting."""
        return config.landing_root(self.landing_root or None)

    def urls(self) -> dict[str, str]:
        """Feed name -> websocket URL (``stocks``, ``options``): config, else environment, else settings."""
        resolved = config.ws_urls()
        return {
            "stocks": self.stocks_ws_url or resolved["stocks"],
            "options": self.options_ws_url or resolved["options"],
        }

    def settings(self) -> CaptureSettings:
        """``DEFAULT.capture`` with this resource's landing root, URLs and tuned fields."""
        urls = self.urls()
        return replace(
            _CAPTURE,
            landing_root=self.root(),
            stocks_ws_url=urls["stocks"],
            options_ws_url=urls["options"],
            strikes_each_side=self.strikes_each_side,
            recenter_dollars=self.recenter_dollars,
            recenter_seconds=self.recenter_seconds,
            batch_seconds=self.batch_seconds,
            batch_events=self.batch_events,
        )

    def entries(self, after_seq: int = 0) -> list[BatchEntry]:
        """Acknowledged batches with ``seq > after_seq``, in sequence order (none if the
        landing zone does not exist yet).

        Raises
        ------
        LandingError
            For a damaged manifest line (other than a torn last line), naming it.
        """
        return [e for e in read_manifest(self.root()) if e.seq > after_seq]

    def gaps(self) -> list[Gap]:
        """The feed gaps the capture recorded, in the order recorded."""
        return read_gaps(self.root())
