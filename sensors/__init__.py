"""Sensors and schedules."""

from sensors.schedules import end_of_day
from sensors.underlyings import register_underlyings

SENSORS = [register_underlyings]
SCHEDULES = [end_of_day]
