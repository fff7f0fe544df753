"""Who acted on a run or an event: the channel (``api``, ``console``, ``cli``) and, when the
operator gave one, a name, recorded as ``channel:name`` beside each approval, rejection,
cancel and replay.

The ops token is shared by everyone who operates the service, so the name is the
operator's own word for themselves, not a proven identity: it answers "which of us did
this?" in the run and event history. Where it comes from:

- JSON API: the ``X-Ops-Actor`` request header, percent-encoded UTF-8 (``%E5%BC%A0%E4%B8%89``
  for 张三), since HTTP header values are Latin-1;
- console: the optional name on the sign-in form, kept in the signed session cookie;
- CLI: ``--by NAME``.

Without a name the channel alone is recorded, as before names existed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .params import ParamError

if TYPE_CHECKING:
    from starlette.requests import Request

HEADER = "x-ops-actor"
NAME_MAX = 48  # the stored actor ("console:" + name) fits the 64-character columns
_NAME = re.compile(r"[\w.@+\- ]+")  # \w: letters of any script (张三), digits, _


class ActorError(ParamError):
    """An operator name that cannot be recorded; ``str()`` says why (→ 400 / CLI error)."""


def operator_name(raw: str | None) -> str | None:
    """The operator's name from ``raw`` (surrounding spaces removed), None when absent or
    blank. Raises ActorError when it is longer than ``NAME_MAX`` characters or holds
    anything but letters, digits, spaces and ``_ . @ + -``."""
    name = (raw or "").strip()
    if not name:
        return None
    if len(name) > NAME_MAX:
        raise ActorError(f"the operator name is longer than {NAME_MAX} characters")
    if not _NAME.fullmatch(name):
        raise ActorError("the operator name may hold only letters, digits, spaces and _ . @ + -")
    return name


def from_header(value: str | None) -> str | None:
    """The name in an ``X-Ops-Actor`` header value (percent-decoded). Raises ActorError."""
    if value is None:
        return None
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise ActorError("X-Ops-Actor is not percent-encoded UTF-8") from None
    return operator_name(decoded)


def actor(channel: str, name: str | None) -> str:
    """``"console"`` or ``"console:alice"``: what the history records."""
    return f"{channel}:{name}" if name else channel


def api_actor(request: Request) -> str:
    """``api`` or ``api:<X-Ops-Actor>``. Raises ActorError (→ 400, nothing done)."""
    return actor("api", from_header(request.headers.get(HEADER)))
