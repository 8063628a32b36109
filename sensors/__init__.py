"""Sensors and schedules."""

from sensors.capture import capture_batches
from sensors.schedules import end_of_day
from sensors.underlyings import register_underlyings

SENSORS = [register_underlyings, capture_batches]
SCHEDULES = [end_of_day]
