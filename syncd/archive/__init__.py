"""The archive format: manifest, objects and codecs (plain), age encryption (crypto, sealed),
what a target records about itself (claims), and the local state dir that holds it all first (state).

Layer 4 of syncd (see syncd/__init__.py): imports only the layers below it (mirror, capture, sqlite, ground).
"""
