"""syncd: keeps every version of a phone's chat database on storage you own.

The packages follow the data, and imports point one way: a module imports from
its own package and from layers below it, never from a peer or a layer above
(`tests/test_layers.py` checks every module):

    __main__ → cli → demo, testing   skins (and the plugin authors' kit)
    daemon/, browse/                 the long-running skins: config, watch, run, status, notify, service, logs;
                                     a read-only web view of any version (shelf, timeline, find, pages, app)
    sync, discover, reading/         one pass: source → capture → mirror → archive locally → delivery;
                                     finding the sources on this machine; reading a version as
                                     conversations: export as JSONL, HTML, text
    delivery/, readback/             to targets (deliver: one path for every layout, with its media step;
                                     fanout, retry, target);
                                     back from them (restore, export, verify)
    archive/, media/                 the format: plain, manifest, codec, claims, crypto, sealed, local state;
                                     the content-addressed media store beside it (packs, chunks, listings)
    mirror/                          the rows as a working copy
    capture/                         the phone's file: snapshot, b-tree pages, change detection
    sqlite/                          schema reading, hardened connections
    backend, source, app, plugins,   ground: the public plugin API (storage, sources, app profiles),
    errors                           stable paths for plugin authors
    fsutil, log, redact, samples     ground every layer may use
"""

__version__ = "0.1.0"
