"""Django's database sessions, with the read that every request makes written out in SQL."""

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from annotate.db import prepared_cursor


class SessionStore(db.SessionStore):
    """The same rows, expiry and cookies as `django.contrib.sessions.backends.db`.

    Each of an annotator's requests reads its session first, and building that one
    query with the ORM cost more CPU than running it (bench/annotate_load.py --profile).
    """

    def load(self) -> dict:
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        with prepared_cursor(alias) as cursor:
            cursor.execute(
                f"SELECT session_data FROM {self.model._meta.db_table} WHERE session_key = %s AND expire_date > %s",
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            row = cursor.fetchone()
        if row is None:
            # As Django's store: an unknown or expired key starts a fresh session.
            self._session_key = None
            return {}
        return self.decode(row[0])
