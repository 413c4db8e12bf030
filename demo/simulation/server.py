"""The project's WSGI application on a loopback port, in a thread of this process.

For simulated annotators without a running Parity: the same application that
gunicorn or runserver serves, behind Django's threaded development server, so every
request is real HTTP. The annotators all come from one address and answer far
faster than people, so the rate limits of the annotator pages are raised (still
counted) for as long as the server runs, in this process only.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.servers.basehttp import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_internal_wsgi_application,
)
from django.test.utils import override_settings

HOST = "127.0.0.1"
# High enough never to refuse a simulated annotator; counting stays part of each request.
RATE = "1000000/m"


class _QuietHandler(WSGIRequestHandler):
    # The handler writes a response's head and body in separate small writes; with
    # Nagle's algorithm the body then waits for the client's delayed ACK of the head,
    # about 40 ms per request on a kept-alive connection (socketserver sets
    # TCP_NODELAY for this flag).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass


@contextmanager
def local_server(*, join_rate: str = RATE, submit_rate: str = RATE) -> Iterator[str]:
    """Serve the project on a free loopback port; yield its base URL, stop on exit.

    The annotator pages' rate limits (PARITY_RATE_JOIN, PARITY_RATE_SUBMIT) are
    `join_rate` and `submit_rate` while it runs.
    """
    overrides = {
        "PARITY_RATE_JOIN": join_rate,
        "PARITY_RATE_SUBMIT": submit_rate,
        "ALLOWED_HOSTS": [*settings.ALLOWED_HOSTS, HOST],
        "SECURE_SSL_REDIRECT": False,  # plain HTTP on loopback, even with production settings
    }
    with override_settings(**overrides):
        server = ThreadedWSGIServer((HOST, 0), _QuietHandler, allow_reuse_address=False)
        server.set_app(get_internal_wsgi_application())
        thread = threading.Thread(target=server.serve_forever, name="simulation-server", daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
