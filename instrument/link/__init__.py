"""What crosses between the two processes: events, typed messages, and both ends of the pipe.
Imports neither :mod:`instrument.engine` nor :mod:`instrument.control` (tested)."""
