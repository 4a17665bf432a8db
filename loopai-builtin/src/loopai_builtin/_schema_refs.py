"""Remote ``$ref`` for the json-schema-validator: off unless allowed, each document fetched once.

A schema comes with a task, so a ``$ref`` to ``https://...`` is a request the task's author
makes the validating machine send. ``jsonschema`` left to itself fetches it with ``urlopen``:
no timeout, no allow-list, again for every record. Here it is the ``retrieve`` hook of a
``referencing.Registry``: nothing is fetched unless the URL is under one of the
``remote_refs`` prefixes, a fetch has a whole-request deadline, follows no redirect and
reads at most :data:`DOCUMENT_LIMIT` bytes, and each document is kept once fetched. A fetch
that fails (no answer in time, refused, an HTTP error, not JSON) is kept for
:data:`RETRY_FAILED_AFTER` seconds: every record needing that URL meanwhile gets the same
message, without another request; then the URL is tried again (a long-running service gets
over a schema server's outage; a run pays one timeout a minute, not one per record).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loopai_builtin._version import __version__

if TYPE_CHECKING:
    import referencing

__all__ = ["DOCUMENT_LIMIT", "RemoteRefError", "RemoteRefs", "normalised_prefix", "unfetched_refs"]

RETRY_FAILED_AFTER = 60.0
"""Seconds a failed fetch is said again for every record before the URL is tried again."""
DOCUMENT_LIMIT = 1 << 20
"""Bytes a remote schema document may have (1 MiB)."""
_HOW = 'list URL prefixes in the json-schema-validator\'s remote_refs setting (remote_refs = ["https://schemas.example.com/"])'


class RemoteRefError(Exception):
    """Why a remote ``$ref`` was not followed; the message names the URL and what to do."""


def normalised_prefix(prefix: str) -> str:
    """``prefix`` as an allowed-URL prefix: an http(s) URL with a host, ending its origin with ``/``
    (``https://a.example`` must not allow ``https://a.example.evil.com/``). Raises ValueError."""
    parts = urlsplit(prefix.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{prefix!r} is not an http:// or https:// URL prefix with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError(f"{prefix!r}: a prefix has no credentials, query or fragment")
    return parts._replace(path=parts.path or "/").geturl()


def _origin_and_path(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, parts.path


class RemoteRefs:
    """The documents behind remote ``$ref``, for the registries of one validator's schemas.

    ``allowed``: normalised URL prefixes (see :func:`normalised_prefix`); empty: none is
    fetched. ``timeout``: seconds one fetch may take in all.
    """

    def __init__(self, allowed: Sequence[str], timeout: float) -> None:
        self.allowed = tuple(allowed)
        self.timeout = timeout
        self._documents: dict[str, Any] = {}
        self._failures: dict[str, tuple[str, float]] = {}
        """Why the fetch of each URL failed, and when (``time.monotonic()``): said again until it is tried again."""
        self._lock = threading.Lock()

    def registry(self, dialect_id: str) -> referencing.Registry[Any]:
        """A registry whose unknown URIs are retrieved here; a document without ``$schema`` is
        read in the dialect ``dialect_id`` (the referring schema's)."""
        import referencing.jsonschema  # with jsonschema, which asks for this: not before

        default = referencing.jsonschema.specification_with(dialect_id, default=referencing.jsonschema.DRAFT202012)
        return referencing.Registry(retrieve=functools.partial(self._retrieve, default))  # type: ignore[call-arg]

    def _retrieve(self, default: referencing.Specification[Any], uri: str) -> referencing.Resource[Any]:
        import referencing

        return referencing.Resource.from_contents(self.document(uri), default_specification=default)

    def allows(self, uri: str) -> bool:
        """Whether ``uri`` is under an allowed prefix (scheme and host compared without case)."""
        try:
            wanted = _origin_and_path(uri)  # by hostname: https://allowed.example@evil.example/ is evil.example
        except ValueError:
            return False
        for prefix in self.allowed:
            allowed = _origin_and_path(prefix)
            if wanted[:3] == allowed[:3] and wanted[3].startswith(allowed[3]):
                return True
        return False

    def refusal(self, uri: str) -> str | None:
        """Why :meth:`document` would not fetch ``uri``, or None when it would try."""
        if urlsplit(uri).scheme not in ("http", "https"):
            return _not_a_url(uri)
        if not self.allowed:
            return f"remote $ref {uri} not fetched: remote refs are off; to allow them, {_HOW}"
        if not self.allows(uri):
            return (
                f"remote $ref {uri} not fetched: it is under none of the remote_refs prefixes "
                f"({', '.join(self.allowed)}); add one to allow it"
            )
        return None

    def document(self, uri: str) -> Any:
        """The parsed JSON at ``uri``, fetched on first use; raises :class:`RemoteRefError`.

        One request per URL for this object's lifetime when it succeeds (the document is kept); a
        failure is raised again with the same message (naming the URL and why) for every use in
        the next :data:`RETRY_FAILED_AFTER` seconds, without a new request, then tried again.
        """
        with self._lock:  # one fetch per document, even when records are validated in parallel
            if uri in self._documents:
                return self._documents[uri]
            failed = self._failures.get(uri)
            if failed is not None and time.monotonic() - failed[1] < RETRY_FAILED_AFTER:
                raise RemoteRefError(failed[0])
            refusal = self.refusal(uri)
            if refusal is not None:
                raise RemoteRefError(refusal)
            try:
                document = self._documents[uri] = self._fetch(uri)
            except RemoteRefError as exc:
                message = f"{exc}; tried again in {RETRY_FAILED_AFTER:g} s"
                self._failures[uri] = (message, time.monotonic())
                raise RemoteRefError(message) from None
            return document

    def _fetch(self, uri: str) -> Any:
        import httpcore  # with the transport, only when a document is fetched

        from loopai_builtin._exchange import TRANSPORT_ERRORS, Connections, Target

        connections = Connections()  # each document is fetched once: no connection is worth keeping
        headers = [
            (b"accept", b"application/schema+json, application/json"),
            (b"user-agent", f"loopai-json-schema-validator/{__version__}".encode()),
        ]
        try:
            target = Target.parse(uri)
            answer = connections.exchange(
                "GET", target, [*target.headers, *headers], b"", timeout=self.timeout, limit=DOCUMENT_LIMIT
            )
        except httpcore.TimeoutException:
            raise RemoteRefError(
                f"remote $ref {uri}: no answer within {self.timeout:g} s (remote_ref_timeout)"
            ) from None
        except TRANSPORT_ERRORS as exc:
            raise RemoteRefError(f"remote $ref {uri}: fetching it failed ({type(exc).__name__})") from None
        finally:
            connections.close()
        if not 200 <= answer.status < 300:
            raise RemoteRefError(f"remote $ref {uri}: the server answered {answer.status} {answer.reason}".rstrip())
        if answer.truncated:
            raise RemoteRefError(f"remote $ref {uri}: the document is larger than {DOCUMENT_LIMIT >> 20} MiB")
        try:
            return json.loads(answer.body)
        except ValueError:
            raise RemoteRefError(f"remote $ref {uri}: the document is not JSON") from None


def unfetched_refs(schema: Any, remote: RemoteRefs) -> list[str]:
    """Why each ``$ref`` in ``schema`` to another document (an ``http(s)`` URL, a file, a path; not one
    of its own ``$id`` resources) would not be fetched: said at start, where each record would
    otherwise fail on it."""
    ids: set[str] = set()
    refs: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$id" and isinstance(value, str):
                    ids.add(value.split("#", 1)[0])
                elif key == "$ref" and isinstance(value, str):
                    refs.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    based = isinstance(schema, dict) and isinstance(schema.get("$id"), str)  # relative refs resolve against it
    said = []
    for ref in dict.fromkeys(refs):
        uri = ref.split("#", 1)[0]
        if not uri or uri in ids:
            continue
        if urlsplit(uri).scheme in ("http", "https"):
            refusal = remote.refusal(uri)
        elif urlsplit(uri).scheme or not based:  # a file: URL, or a path with nothing to resolve it against
            refusal = _not_a_url(uri)
        else:
            continue
        if refusal is not None:
            said.append(refusal)
    return said


def _not_a_url(uri: str) -> str:
    return (
        f"$ref {uri} not followed: only http(s) documents are fetched, never files; put the schema it "
        'names under "$defs" and refer to it as "#/$defs/NAME", or inline it'
    )
