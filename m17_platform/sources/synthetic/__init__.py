"""A deterministic, seeded simulator of one full session of an optionable underlying (SPY)
at realistic scale, with ground truth: benchmarks, scale tests and a demo without keys.

What it generates, per partition (trade date x underlying)
-----------------------------------------------------------
* ``stock_quotes`` / ``stock_trades``: the underlying's NBBO on a $0.01 grid around a
  GBM + jump efficient price, prints of known aggressor (:mod:`.underlying`).
* ``futures_mbp10`` / ``futures_trades``: the futures proxy (ES for SPY, front quarterly
  contract, e.g. ``ESZ5``) as a ten-level book on the 0.25 grid whose mid stays within
  half a tick of ``10 x`` the underlying's mid, and prints at its best levels with the
  exchange's aggressor side (:mod:`.underlying`).
* ``option_contracts`` / ``option_quotes`` / ``option_trades``: a 0DTE + weekly chain
  (486 contracts by default) quoted off an SSVI surface (Gatheral & Jacquier 2014) with
  Black-Scholes-Merton prices, and prints of known aggressor (singles, multi-exchange
  sweeps, blocks) against the quote prevailing at their instant (:mod:`.chain`).
* ``rates``: the configured constant (:func:`m17_platform.sources.rates.constant_rates`),
  the same rate and dividend yield the chain is priced with.

Every size, rate, grid and surface parameter is a field of
:class:`m17_platform.settings.SyntheticSettings`; sessions, early closes and expiry
instants come from :mod:`m17_platform.calendar`.

Determinism and streaming
-------------------------
Each table of each contract draws from its own stream
``numpy.random.default_rng([seed, date ordinal, crc32(underlying), stream, contract])``,
so the same settings give the same bytes, whatever ``chunk_rows`` is, and a contract
can be generated alone. Option tables are generated contract by contract in OCC-symbol
order and re-cut into chunks of at most ``chunk_rows`` rows: the 20-million-row default
day never sits in memory at once. ``sequence`` numbers each table's rows from 0 in the
lake's sort order.

Ground truth
------------
:meth:`SyntheticSource.ground_truth` gives, per print, the true aggressor side, the
surface implied vol, the underlying's mid, the time to expiry and the model price at the
print, and the quote the print traded against; per quote (streamed with
:meth:`SyntheticSource.ground_truth_chunks`), the model price and its inputs; per
contract, its activity and the surface parameters (:data:`TRUTH_SCHEMAS`).
"""

from m17_platform.sources.synthetic.chain import surface_vol
from m17_platform.sources.synthetic.source import TABLES, TRUTH_SCHEMAS, SyntheticSource

__all__ = ["SyntheticSource", "TABLES", "TRUTH_SCHEMAS", "surface_vol"]
