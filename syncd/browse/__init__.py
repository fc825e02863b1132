"""`syncd browse`: a local, read-only web view of an archive's versions.

A skin at the daemon's layer (see syncd/__init__.py): it reads through syncd.reading
(the model, history, the export's look) and syncd.readback (restores). The parts:

    shelf     the versions asked for, each restored privately once (0700 temp dir) and kept open
    timeline  a conversation a page at a time, by keyset (time, id), never OFFSET
    find      what the search box calls: `syncd search`'s index, read against the version shown
    pages     the HTML: everything from the archive escaped, no script
    app       the WSGI routes (werkzeug), all GET, behind a token gate
    server    cheroot on 127.0.0.1, the URL with its token printed at start
"""
