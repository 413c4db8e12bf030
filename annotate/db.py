"""Cursors for the few statements that every annotator's request runs."""

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


def prepared_cursor(alias: str = DEFAULT_DB_ALIAS):
    """A cursor on the database, as `connection.cursor()` gives, but on PostgreSQL one
    that binds parameters on the server.

    Django's cursors write the values into the statement, so PostgreSQL parses and plans
    every one afresh. With server-side binding each statement keeps one text, and
    psycopg prepares it once a connection has run it `prepare_threshold` times
    (DATABASES OPTIONS; unset, as in Django's default, it never does). Where queries are
    logged (DEBUG, a test that captures them, bench --explain), Django's own cursor runs
    them, so that the log shows each statement with its values.
    """
    db = connections[alias]
    if db.vendor != "postgresql" or db.queries_logged:
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    # Django's wrapper, as around its own cursors: database errors become Django's.
    return db.make_cursor(psycopg.Cursor(db.connection))
