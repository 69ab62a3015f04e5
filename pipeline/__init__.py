"""m3-profiles: Faxe-style profile analysis of match-group-3 citizens, as a batch pipeline
(ingest -> segment -> report) over an embedded DuckDB warehouse."""

__version__ = "0.1.0"
