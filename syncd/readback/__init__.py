"""Reading an archive back: restore a version, export it as a database, verify a target.

Layer 5 of syncd (see syncd/__init__.py): imports only the archive and the layers below it;
never syncd.delivery (its peer), syncd.sync or the daemon.
"""
