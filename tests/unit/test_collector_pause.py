"""The cycle collector is off while plans are made and stored, and comes back after the last one."""

from __future__ import annotations

import gc
import threading

from app.services.plans import _collector_paused


def test_the_collector_comes_back_after_the_last_of_overlapping_runs() -> None:
    assert gc.isenabled()
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with _collector_paused():
            first_in.set()
            second_done.wait(5)
            seen.append(gc.isenabled())  # the other run ended: still off, this one is not done

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with _collector_paused():
        assert not gc.isenabled()
    second_done.set()
    thread.join(5)
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_host_stays_off() -> None:
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
