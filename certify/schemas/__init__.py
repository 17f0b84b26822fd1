"""Schemas and safe readers for the files users hand to certify (loop files, plant files).

:mod:`certify.schemas.loop` holds the JSON schemas of loop and plant files and a validator whose
messages name the offending field; :mod:`certify.schemas.files` opens user-named files without ever
blocking on a FIFO or a device.
"""

from certify.schemas.files import check_regular_file, read_regular_file
from certify.schemas.loop import LOOP_SCHEMA, PLANT_SCHEMA, validate_loop, validate_plant

__all__ = ["LOOP_SCHEMA", "PLANT_SCHEMA", "check_regular_file", "read_regular_file", "validate_loop",
           "validate_plant"]
