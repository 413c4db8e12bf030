"""The default storage: a file appears under its name with all its bytes, or not at all."""

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from parity.storage import AtomicFileSystemStorage


class _Watched(ContentFile):
    """Content that looks at the storage between its two chunks, as a concurrent reader would."""

    def __init__(self, storage, name):
        super().__init__(b"first half|second half")
        self.storage, self.name_watched, self.seen = storage, name, []

    def chunks(self, chunk_size=None):
        yield b"first half|"
        self.seen.append(self.storage.exists(self.name_watched))
        yield b"second half"


def test_a_file_being_saved_is_not_there_until_it_is_whole(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path / "store")
    content = _Watched(storage, "cache/a.png")

    assert storage.save("cache/a.png", content) == "cache/a.png"

    assert content.seen == [False]
    assert storage.open("cache/a.png").read() == b"first half|second half"
    assert [p.name for p in (tmp_path / "store" / "cache").iterdir()] == ["a.png"]  # no partial file left


def test_a_name_taken_meanwhile_gets_another_name_and_both_files_stay_whole(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path / "store")
    storage.save("x.png", ContentFile(b"one"))

    other = storage._save("x.png", ContentFile(b"two"))  # as when another thread saved it first

    assert other != "x.png"
    assert (storage.open("x.png").read(), storage.open(other).read()) == (b"one", b"two")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted(["x.png", other])


def test_it_is_the_default_storage():
    assert isinstance(default_storage, AtomicFileSystemStorage)
