"""Shared document rendering: a template becomes a PDF (letters, invoices, labels).

WeasyPrint fetches every stylesheet, image and font a document names. Ours
may name only our own static files: a document built from customer data
must never make the server read a local file or call another host.
"""

from __future__ import annotations

import mimetypes
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse


class RefusedURL(ValueError):
    """A document asked for something other than one of our static files."""


def _base_url() -> str:
    # Relative URLs ("/static/...") resolve against our own site; the fetcher
    # then maps them to files without any network access.
    return f"{settings.SITE_URL}/"


def static_path(url: str) -> Path:
    """The file behind a URL of one of our static files; RefusedURL for anything else."""
    parts = urlsplit(url)
    site = urlsplit(settings.SITE_URL)
    if parts.scheme or parts.netloc:
        same_site = (parts.scheme, parts.netloc) == (site.scheme, site.netloc)
        if not same_site or parts.scheme not in ("http", "https"):
            raise RefusedURL(f"Documents may only use our static files, not {url!r}")
    path = unquote(parts.path)
    prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/static/"
    if not path.startswith(prefix):
        raise RefusedURL(f"Documents may only use our static files, not {url!r}")
    name = path[len(prefix):]
    if not name or "\\" in name or "\0" in name or ".." in name.split("/") or name.startswith("/"):
        raise RefusedURL(f"Not a static file name: {url!r}")
    name = posixpath.normpath(name)
    found = finders.find(name)
    if isinstance(found, list):  # find(all=True) shape; not used, keeps the type narrow
        found = found[0] if found else None
    if found:
        return Path(found)
    # After collectstatic (hashed names from {% static %}) the file is in STATIC_ROOT.
    try:
        collected = Path(staticfiles_storage.path(name))
    except (NotImplementedError, ValueError):
        collected = None
    if collected is not None and collected.is_file():
        return collected
    raise RefusedURL(f"No such static file: {url!r}")


class StaticOnlyFetcher(URLFetcher):
    """Serve our static files to WeasyPrint; refuse everything else.

    ``data:`` URLs are allowed: they carry their content inline (QR codes and
    barcodes rendered as data URIs) and make WeasyPrint read nothing.
    """

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if url.startswith("data:"):
            return super().fetch(url, headers)
        path = static_path(url)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            url, body=path.read_bytes(), headers={"Content-Type": content_type}
        )


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """Render ``template_name`` with ``context`` to PDF bytes.

    Call it inside ``translation.override(language)`` for a document in the
    reader's language.
    """
    html = render_to_string(template_name, context)
    document = HTML(string=html, base_url=_base_url(), url_fetcher=StaticOnlyFetcher())
    pdf = document.write_pdf()
    assert pdf is not None
    return pdf
