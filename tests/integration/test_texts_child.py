"""A large ``both`` write has its artifact texts made by a forked child while the rows are stored
(``app.storage.texts_child``): the texts stored are the codec's, byte for byte; a refusal or a death in
the child fails the write like any other failure, leaving no content; the child is always reaped."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from app import db
from app.errors import StorageError
from app.planning.model import PlanContent
from app.planning.pipeline import plan_input_set
from app.storage import codec_artifacts, plans, texts_child
from app.storage.plans import PlanStore
from app.storage.schema import plan_artifacts, plan_series
from tests.conftest import SAMPLE


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> PlanStore:
    monkeypatch.setattr(plans, "TEXTS_CHILD_MIN_ROWS", 1)  # the sample plan is small
    db.init_db(db_url)
    return PlanStore(db.get_engine(db_url))


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the children the store starts."""
    started: list[int] = []
    real_init = texts_child.TextsChild.__init__

    def spy(self, content: PlanContent) -> None:
        real_init(self, content)
        started.append(self._pid)

    monkeypatch.setattr(texts_child.TextsChild, "__init__", spy)
    return started


def stored(store: PlanStore, version_id: str) -> tuple[dict[str, bytes], int]:
    with store.engine.connect() as conn:
        texts = {
            name: text.encode()
            for name, text in conn.execute(
                select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
                    plan_artifacts.c.version_id == version_id
                )
            )
        }
        rows = conn.execute(
            select(func.count()).select_from(plan_series).where(plan_series.c.version_id == version_id)
        ).scalar_one()
    return texts, rows


def assert_reaped(pids: list[int]) -> None:
    assert pids, "the write started no child"
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_the_child_makes_exactly_the_codecs_texts(store: PlanStore, children: list[int]) -> None:
    content = plan_input_set(SAMPLE, version_id="child-ok")
    result = store.write_version(content, mode="both")

    texts, rows = stored(store, "child-ok")
    assert texts == codec_artifacts.encode_bytes(content)
    assert result.texts == texts and rows > 0
    assert store.read_version("child-ok", mode="files").documents == content.documents
    assert store.stored_digests("child-ok")[1] is not None  # a certified pair
    assert_reaped(children)


def test_no_child_in_db_or_files_mode_nor_for_a_small_plan(
    store: PlanStore, children: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_version(plan_input_set(SAMPLE, version_id="no-child-db"), mode="db")
    store.write_version(plan_input_set(SAMPLE, version_id="no-child-files"), mode="files")
    monkeypatch.setattr(plans, "TEXTS_CHILD_MIN_ROWS", 10**9)
    store.write_version(plan_input_set(SAMPLE, version_id="no-child-small"), mode="both")
    assert children == []


def refuse_after_first(content: PlanContent) -> Iterator[tuple[str, bytes]]:
    for i, item in enumerate(sorted(content.documents)):
        if i == 1:
            raise ValueError("refused in the child: a value the codec cannot store")
        yield item, b"{}"


def die_after_first(content: PlanContent) -> Iterator[tuple[str, bytes]]:
    yield sorted(content.documents)[0], b"{}"
    os.kill(os.getpid(), signal.SIGKILL)
    yield "never", b""


@pytest.mark.parametrize(
    ("maker", "message"),
    [(refuse_after_first, "refused in the child"), (die_after_first, "killed by signal 9")],
)
def test_a_refusal_or_death_in_the_child_fails_the_write_and_leaves_no_content(
    store: PlanStore, children: list[int], monkeypatch: pytest.MonkeyPatch, maker, message: str
) -> None:
    content = plan_input_set(SAMPLE, version_id="child-fails")
    monkeypatch.setattr(codec_artifacts, "iter_bytes", maker)  # the child is forked with it

    with pytest.raises(StorageError, match=message):
        store.write_version(content, mode="both")

    assert stored(store, "child-fails") == ({}, 0)
    info = store.get_version("child-fails")
    assert info.status == "failed" and message in (info.error or "")
    assert_reaped(children)
    monkeypatch.undo()
    monkeypatch.setattr(plans, "TEXTS_CHILD_MIN_ROWS", 1)
    store.write_version(content, mode="both")
    assert stored(store, "child-fails")[0] == codec_artifacts.encode_bytes(content)
