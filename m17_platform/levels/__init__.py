"""Level physics and outcome labels, the domain core: pure functions over
polars / numpy / numba, no Dagster.

Tables (schemas in :mod:`.schemas`, one builder each, for one partition):

* ``levels`` (:func:`.universe.build_levels`): the level universe of each 1-minute bar,
  every level known at the bar's start, with the instant it became known;
* ``level_touches`` (:func:`.touches.build_touches`): the levels each bar touched, with
  direction and the critical-zone flag;
* ``level_physics`` (:func:`.physics.build_physics`): barrier (:mod:`.barrier`, book
  changes from :mod:`.events`), tape (:mod:`.tape`), fuel (:mod:`.fuel`), approach
  (:mod:`.approach`) and book quality per touch, over [bar start, decision);
* ``outcome_labels`` (:func:`.labels.build_labels`): BREAK / BOUNCE / CHOP over
  (decision, decision + 5 min], null where the window passes the data;
* ``level_signals`` (:func:`.signals.build_level_signals`): critical touches with
  everything above.

ES prices become SPY prices through one function, :func:`.convert.convert`, with a ratio
measured from the past (:func:`.convert.measured_ratios`). :func:`.asof.build_signals`
runs the chain (optionally as of an instant), :func:`.asof.truncate_inputs` cuts the
inputs, :func:`.asof.lookahead_check` proves no feature sees the future. Every threshold
is a field of :class:`.settings.LevelSettings`.
"""
