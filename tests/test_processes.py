"""The one main-process rule: rank 0 of a launched job, or a lone process."""

from __future__ import annotations

from augmentgen._processes import is_main_process


def test_a_lone_process_is_the_main_one(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()


def test_the_launchers_rank_decides_before_a_process_group_exists(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
