"""LoopStop: the per-row criterion that ends looping rows of a batched generation early."""

import pytest

torch = pytest.importorskip("torch")

from synthkg.llm.hf import LoopStop  # noqa: E402

PAD = 0


def _rows(*rows: list[int]) -> "torch.Tensor":
    width = max(len(r) for r in rows)
    return torch.tensor([[PAD] * (width - len(r)) + r for r in rows])


def _check(stop: LoopStop, ids: "torch.Tensor") -> list[bool]:
    result = None
    for _ in range(stop.every):  # the criterion looks only every `every` steps
        result = stop(ids, None)
    return result.tolist()


def test_a_row_repeating_one_period_three_times_is_stopped_and_marked_looped() -> None:
    prompt = [7] * 5
    period = list(range(1, 26))  # 25 tokens
    varied = list(range(100, 200))  # no repetition
    ids = _rows(prompt + varied[:10] + period * 3, prompt + varied[:85])
    stop = LoopStop(prompt_width=5, pad_id=PAD)
    assert _check(stop, ids) == [True, False]
    assert stop.looped == {0}


def test_two_repeats_or_a_short_period_below_the_minimum_do_not_stop() -> None:
    prompt = [7] * 3
    period = list(range(1, 26))
    ids = _rows(prompt + list(range(100, 130)) + period * 2)
    assert _check(LoopStop(prompt_width=3, pad_id=PAD), ids) == [False]
    # "1 2 3" repeated 9 times (27 tokens) also repeats with period 21 only 1.3 times: not a loop yet
    short = _rows(prompt + list(range(100, 140)) + [1, 2, 3] * 9)
    assert _check(LoopStop(prompt_width=3, pad_id=PAD), short) == [False]


def test_a_long_run_of_one_token_is_a_loop_but_padding_of_a_finished_row_is_not_marked() -> None:
    prompt = [7] * 3
    ids = _rows(prompt + [5] * 70, prompt + [9, 8, 2] + [PAD] * 67)
    stop = LoopStop(prompt_width=3, pad_id=PAD)
    assert _check(stop, ids) == [True, True]  # the finished row may stop too: it is done anyway
    assert stop.looped == {0}


def test_it_only_looks_every_n_steps() -> None:
    ids = _rows([7] + [5] * 90)
    stop = LoopStop(prompt_width=1, pad_id=PAD, every=4)
    assert [stop(ids, None).item() for _ in range(4)] == [False, False, False, True]
