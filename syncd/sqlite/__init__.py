"""What every stage knows about SQLite files: reading a schema, and connections hardened against archive data.

Layer 1 of syncd (see syncd/__init__.py): imports only the ground (syncd.errors, syncd.fsutil, ...).
"""
