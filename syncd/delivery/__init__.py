"""Delivery to storage targets: one path for every layout (deliver), its media step (media), every
target at once (fanout), retry with backoff, and what a target is (target).

`deliver_to` takes the steps in one order for plain and encrypted targets; what differs
between layouts is asked of the archive classes (syncd.archive.plain.Archive; for the
media store, Archive.media_area picks its layout's builder in media), never decided here
with `if sealed:`. `sync` and the daemon both deliver through here, and
`status` finds a target's record with the same `cursor_key`.

Layer 5 of syncd (see syncd/__init__.py): imports only the archive, the media store and the layers below them;
never syncd.readback (its peer), syncd.sync or the daemon.
"""
