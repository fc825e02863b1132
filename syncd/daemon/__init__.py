"""The long-running skin: config, file watching, the run loop, status, systemd (notify, service), logs.

Layer 7 of syncd (see syncd/__init__.py): may import syncd.sync and everything below it;
only the CLI and the demo import from here.
"""
