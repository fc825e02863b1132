"""Reading a version as a person reads it: conversations and messages, exported as JSONL, HTML or text.

At the layer of syncd.sync (see syncd/__init__.py): restores a version through
syncd.readback into a private folder, opens it read-only, reads it through the app
profile that recognises it (syncd.app, from plugins) and renders the model.
"""
