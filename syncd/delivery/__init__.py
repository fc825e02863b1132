"""Delivery to storage targets: what a target is, retry with backoff, and every target at once (fanout).

Layer 5 of syncd (see syncd/__init__.py): imports only the archive and the layers below it;
never syncd.readback (its peer), syncd.sync or the daemon.
"""
