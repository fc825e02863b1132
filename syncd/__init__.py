"""syncd: keeps every version of a phone's chat database on storage you own."""

__version__ = "0.1.0"
