"""A tiny stdlib browser for the annotator pages: what a simulated annotator sees and clicks.

It keeps one keep-alive connection and a cookie jar, follows redirects, sends
forms, and speaks htmx the way the pages expect: a form with ``hx-get`` or
``hx-post`` is sent with ``HX-Request: true`` and answered with a fragment, and an
``HX-Redirect`` header is a full page load. `Page` is what is read off a page or
fragment: the ``#trial`` section's kind, the caption, the forms with their buttons
and images, the preload list, a message, a completion code.

Standard library only (http.client, html.parser); nothing here knows the database.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

REDIRECTS = 10
# Elements without an end tag: they open nothing that text could be inside.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
TIMEOUT_S = 60
# Errors of a keep-alive connection that the server closed between two requests.
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionResetError, BrokenPipeError)


@dataclass
class Button:
    name: str
    value: str
    image: str = ""  # the src of the image inside the button, if any


@dataclass
class Form:
    method: str  # GET or POST
    action: str
    htmx: bool  # sent by htmx (hx-get / hx-post) rather than as a page load
    inputs: dict[str, str] = field(default_factory=dict)
    buttons: list[Button] = field(default_factory=list)


@dataclass
class Page:
    """A response as the annotator reads it."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    section: str = ""  # the #trial section's kind: trial, practice, feedback, break, rate-limited
    title: str = ""  # the first h1
    caption: str = ""
    message: str = ""  # a .message alert: an answer that was not recorded, a refusal
    verdict: str = ""  # practice feedback: "correct" or "wrong"
    code: str = ""  # the completion code on the done page
    paragraph: str = ""  # the first paragraph's text, which says why a page has nothing to do
    preload: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def retry_after(self, default: float = 5.0) -> float:
        try:
            return max(0.0, float(self.headers.get("retry-after", default)))
        except ValueError:
            return default


class _Reader(HTMLParser):
    """Collects what `Page` holds from the markup of the annotator pages."""

    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.form: Form | None = None
        self.button: Button | None = None
        # The Page fields whose text is being collected, each with the depth of open
        # elements inside the one it comes from.
        self.collecting: list[list] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        classes = a.get("class", "").split()
        if tag not in _VOID:
            for collector in self.collecting:
                collector[1] += 1
        if tag == "section" and a.get("id") == "trial":
            kinds = [c for c in classes if c != "trial"]
            self.page.section = kinds[0] if kinds else "trial"
            self.page.preload = a.get("data-preload", "").split()
        elif tag == "form":
            hx = a.get("hx-post") or a.get("hx-get")
            method = "POST" if a.get("hx-post") or a.get("method", "get").lower() == "post" else "GET"
            self.form = Form(method=method, action=hx or a.get("action", ""), htmx=bool(hx))
            self.page.forms.append(self.form)
        elif tag == "input" and self.form is not None and a.get("name"):
            self.form.inputs[a["name"]] = a.get("value", "")
        elif tag == "button" and self.form is not None:
            self.button = Button(name=a.get("name", ""), value=a.get("value", ""))
            self.form.buttons.append(self.button)
        elif tag == "img" and self.button is not None:
            self.button.image = a.get("src", "")
        elif tag == "a" and a.get("href"):
            self.page.links.append(a["href"])
        elif tag == "h1" and not self.page.title:
            self._collect("title")
        elif tag == "code" and not self.page.code:
            self._collect("code")
        elif "caption" in classes:
            self._collect("caption")
        elif "message" in classes:
            self._collect("message")
        elif "verdict" in classes:
            self.page.verdict = "correct" if "correct" in classes else "wrong"
        elif tag == "p" and not self.page.paragraph:
            self._collect("paragraph")

    def _collect(self, name: str) -> None:
        self.collecting.append([name, 1])  # its own element is open

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "button":
            self.button = None
        if tag in _VOID:
            return
        for collector in self.collecting:
            collector[1] -= 1
        for name, _ in [c for c in self.collecting if c[1] <= 0]:
            setattr(self.page, name, " ".join(getattr(self.page, name).split()))
        self.collecting = [c for c in self.collecting if c[1] > 0]

    def handle_data(self, data: str) -> None:
        for name, _ in self.collecting:
            setattr(self.page, name, getattr(self.page, name) + data)


class Browser:
    """One annotator's browser: a keep-alive connection to `base_url` and its cookies."""

    def __init__(self, base_url: str, *, timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base = f"{parts.scheme}://{parts.netloc}"
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.connection = connection(parts.hostname, parts.port, timeout=timeout)
        self.cookies: dict[str, str] = {}
        self.images: dict[str, bytes] = {}  # the browser's image cache, by URL
        self.requests = 0

    def close(self) -> None:
        self.connection.close()

    # --------------------------------------------------------------------------
    # Requests
    # --------------------------------------------------------------------------
    def request(self, method: str, url: str, *, data: dict | None = None, htmx: bool = False,
                referer: str = "") -> tuple[int, dict[str, str], bytes]:
        """One request, without following redirects: (status, lower-case headers, body)."""
        target = urlsplit(urljoin(self.base + "/", url))
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {"Accept": "text/html,image/*;q=0.9,*/*;q=0.8", "User-Agent": "parity-simulated-annotator"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        if referer:
            headers["Referer"] = referer
        body = None
        if data is not None:
            body = urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.base
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
                break
            except _STALE:
                self.connection.close()  # the next request opens a fresh connection
                if attempt:
                    raise
        self.requests += 1
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0].strip()
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def load(self, method: str, url: str, *, data: dict | None = None, htmx: bool = False,
             referer: str = "") -> Page:
        """A request whose redirects are followed (a 303-like GET after a POST), read as a `Page`.

        An htmx request follows a 3xx as the browser's XHR does (still an htmx request),
        and an ``HX-Redirect`` answer as htmx does: with a full page load.
        """
        url = urljoin(self.base + "/", url)
        for _ in range(REDIRECTS):
            status, headers, body = self.request(method, url, data=data, htmx=htmx, referer=referer)
            if "hx-redirect" in headers:
                method, data, htmx, url = "GET", None, False, urljoin(url, headers["hx-redirect"])
            elif status in (301, 302, 303, 307, 308) and "location" in headers:
                if status in (301, 302, 303):
                    method, data = "GET", None
                url = urljoin(url, headers["location"])
            else:
                return read_page(url, status, headers, body)
        raise RuntimeError(f"more than {REDIRECTS} redirects from {url}")

    def image(self, url: str) -> bytes:
        """The image at `url`, from the cache once fetched (the pages allow private caching)."""
        url = urljoin(self.base + "/", url)
        if url not in self.images:
            status, _, body = self.request("GET", url)
            if status != 200:
                raise RuntimeError(f"image {url} answered {status}")
            self.images[url] = body
        return self.images[url]

    def submit(self, page: Page, form: Form, *, button: Button | None = None, extra: dict | None = None) -> Page:
        """Send `form` of `page` as the browser would: by htmx if the form says so."""
        data = dict(form.inputs)
        if button is not None and button.name:
            data[button.name] = button.value
        data.update(extra or {})
        if form.method == "GET":
            action = form.action + (("&" if "?" in form.action else "?") + urlencode(data) if data else "")
            return self.load("GET", urljoin(page.url, action), htmx=form.htmx, referer=page.url)
        return self.load("POST", urljoin(page.url, form.action), data=data, htmx=form.htmx, referer=page.url)


def read_page(url: str, status: int, headers: dict[str, str], body: bytes) -> Page:
    page = Page(url=url, status=status, headers=headers, body=body)
    if headers.get("content-type", "").startswith("text/html"):
        reader = _Reader(page)
        reader.feed(body.decode("utf-8", errors="replace"))
        reader.close()
    return page

