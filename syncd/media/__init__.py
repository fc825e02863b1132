"""Media: the chat's photos, voice notes and videos, stored once by content beside the database versions.

    backup    one pass over a media folder: scan, store what is new, write the version's listing
    scan      what a folder holds (path, size, mtime, inode, hash), reading only files that changed
    store     the content-addressed store on a Backend: small files packed, large ones chunked, an index
    listing   one version's media: path -> hash, size, time, as one compact object
    restore   one listing's tree written back, every byte checked against its hash

Remote layout (every object named by the SHA-256 of its own bytes, written once, before what names it):
`media/objects/xx/<hash>` packs and chunks, `media/index/<hash>` which file lies where,
`media/listings/<hash>` a version's files.
"""
