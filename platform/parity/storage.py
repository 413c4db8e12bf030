"""The default storage: Django's FileSystemStorage, with every file appearing whole.

Django's FileSystemStorage creates a file under its final name and then writes into
it, so a request that finds the name with `exists()` while another thread is still
saving it (two annotators asking at once for an image the presentation policy has
not rendered yet) reads a short or empty file. Here the bytes go to a temporary
file beside it first, which is then hard-linked under the name: the name appears
with all its bytes at once, and the link fails as an exclusive create does when the
name exists, so `save` moves on to another name exactly as before.
"""

import os
import uuid

from django.core.files.storage import FileSystemStorage


class AtomicFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        folder, base = os.path.split(name)
        partial = super()._save(os.path.join(folder, f".partial-{uuid.uuid4().hex}-{base}"), content)
        try:
            while True:
                try:
                    os.link(self.path(partial), self.path(name))
                    return name
                except FileExistsError:
                    name = self.get_available_name(name)
        finally:
            os.unlink(self.path(partial))
