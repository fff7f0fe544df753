"""Console form bodies, read within bounds before anything else looks at them.

The sign-in form is reachable without a session on the same listener as the public
callback URLs, so a form is refused unread when it is larger than it can be (413), and
refused when it holds more fields than any console form has or is not UTF-8 (400).
Starlette's own parser reads a url-encoded body whole and does not count its fields.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from ..http import BodyTooLarge, read_body

FORM_MAX_BYTES = 64 * 1024  # a url-encoded console form: ids, filters, a name, the token
MAX_FIELDS = 20


class FormError(Exception):
    """The form cannot be read: ``status`` (400, 411, 413 or 415) and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def read_form(request: Request, *, max_upload: int | None = None,
                    max_fields: int = MAX_FIELDS) -> FormData:
    """The posted form. A multipart body (the Excel upload) may be up to ``max_upload``
    bytes with at most two files (None: no multipart here, 415); any other body is read
    as url-encoded UTF-8, at most ``FORM_MAX_BYTES``. Raises FormError."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        if max_upload is None:
            raise FormError(415, "this form is sent url-encoded")
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise FormError(411, "an upload needs a Content-Length")
        if int(declared) > max_upload:
            raise FormError(413, f"the upload is larger than {max_upload // (1024 * 1024)} MiB")
        try:
            return await request.form(max_files=2, max_fields=max_fields)
        except (MultiPartException, HTTPException) as exc:  # Starlette wraps the first
            reason = exc.detail if isinstance(exc, HTTPException) else exc.message
            raise FormError(400, f"the form cannot be read: {str(reason)[:120]}") from None
    try:
        raw = await read_body(request, FORM_MAX_BYTES)
    except BodyTooLarge:
        raise FormError(413, "the form is larger than any console form") from None
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields,
                          errors="strict")
    except UnicodeDecodeError:
        raise FormError(400, "the form is not UTF-8") from None
    except ValueError:
        raise FormError(400, f"the form has more than {max_fields} fields") from None
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)
