"""One version's media as an export links it: which listed file each message's reference names,
and, once the messages are written, those files restored beside them (original bytes, checked)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .area import Area
from .listing import MediaFile, read_listing_whole
from .match import MediaIndex
from .restore import restore_media
from .store import Piece, load_index


class MediaLinks:
    """The listing of one version, to link messages to its files; remembers the files it linked."""

    def __init__(self, area: Area, listing: str):
        self.area, self.listing = area, listing
        files, self.absent = read_listing_whole(area, listing)
        self.files = {f.path: f for f in files}
        self._index = MediaIndex(self.files)
        self.used: set[str] = set()

    def find(self, reference: str) -> MediaFile | None:
        """The listed file `reference` names (then it is restored with the export), or None."""
        path = self._index.find(reference)
        if path is None:
            return None
        self.used.add(path)
        return self.files[path]

    @cached_property
    def index(self) -> dict[str, list[Piece]]:
        """Where each of the store's files lies: read once, for a browser serving file after file."""
        return load_index(self.area)

    def restore_used(self, dest: Path) -> int:
        """Write the files linked so far under `dest` (a new folder); how many."""
        return restore_media(self.area, self.listing, dest, only=self.used) if self.used else 0
