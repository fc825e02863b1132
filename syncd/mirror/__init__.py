"""The mirror: the rows of the phone's database as a working copy that turns a plan into changesets.

Layer 3 of syncd (see syncd/__init__.py): imports only syncd.capture, syncd.sqlite and the ground.
"""
