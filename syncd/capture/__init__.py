"""Capture: the phone's file, copied privately (snapshot), read as b-tree pages, and what changed (detect).

Layer 2 of syncd (see syncd/__init__.py): imports only syncd.sqlite and the ground, never a stage above.
"""
