"""The artifacts codec: plan content <-> the documents of ``plan_artifacts`` (name -> text), losslessly.

Owns which artifact names are plan content and how their text is made and read; the text itself is
``app.planning.documents``' canonical form (compact, sorted keys), so encoding is lossless by
construction. Documents from outside the engine are validated on encode with the same rules as the
PlanRepository codec, so a plan stored as artifacts can always be backfilled into rows; the engine's
own content (``PlanContent.trusted``) is written as made. No I/O here: the plan store and the legacy
helpers write the texts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from app.planning import documents as docs
from app.planning.model import PSI_ARTIFACTS, PlanContent
from app.storage.codec_series import KNOWN_DOCUMENTS, validate_document


def encode(content: PlanContent, *, validated: bool = False) -> dict[str, str]:
    """Artifact name -> text for every document of the plan (PSI documents included when present).
    ``validated`` skips the shape check when the caller has just run it (the series codec does the
    same check while encoding, so a ``both`` write checks each document once)."""
    return {name: body.decode() for name, body in encode_bytes(content, validated=validated).items()}


def encode_bytes(content: PlanContent, *, validated: bool = False) -> dict[str, bytes]:
    """:func:`encode` as the UTF-8 bytes of each text: what the plan store hashes and then stores."""
    if not validated:
        check(content)
    return dict(iter_bytes(content))


def check(content: PlanContent) -> None:
    """Refuse (ValueError) a document that could not be stored losslessly. The engine's own documents
    are taken as made; PSI documents come from planners' edits, not from the engine: they are always
    checked."""
    for name in sorted(content.documents):
        if not content.trusted or name in PSI_ARTIFACTS:
            validate_document(name, content.documents[name])


def iter_bytes(content: PlanContent) -> Iterator[tuple[str, bytes]]:
    """``(name, UTF-8 text)`` of each artifact in name order, each made when it is asked for, so a
    writer can store one text while the next is made (the content must have passed :func:`check`)."""
    for name in sorted(content.documents):
        yield name, docs.artifact_bytes(name, content.documents[name])


def decode(version_id: str, texts: Mapping[str, str]) -> PlanContent:
    """The plan content held by a version's artifacts. Names that are not plan artifacts are ignored;
    the version's params are aggregate.json's (or the first JSON document's when it is missing)."""
    documents = {
        name: docs.parse_artifact(name, text) for name, text in texts.items() if name in KNOWN_DOCUMENTS
    }
    return PlanContent(version_id=version_id, params=_params(documents), documents=documents)


def _params(documents: Mapping[str, Any]) -> dict[str, Any]:
    names = sorted(
        n for n, d in documents.items() if isinstance(d, dict) and isinstance(d.get("params"), dict)
    )
    names.sort(key=lambda n: n != "aggregate.json")
    return dict(documents[names[0]]["params"]) if names else {}
