"""Django's database sessions, with the read that every request makes written out in SQL."""

from django.contrib.sessions.backends import db
from django.db import router

from annotate.db import session_data


class SessionStore(db.SessionStore):
    """The same rows, expiry and cookies as `django.contrib.sessions.backends.db`.

    Each of an annotator's requests reads its session first, and building that one
    query with the ORM cost more CPU than running it (bench/annotate_load.py --profile).
    """

    def load(self) -> dict:
        data = session_data(model=self.model, alias=router.db_for_read(self.model), session_key=self.session_key)
        if data is None:
            # As Django's store: an unknown or expired key starts a fresh session.
            self._session_key = None
            return {}
        return self.decode(data)
