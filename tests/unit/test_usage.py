import pytest

from breaker import Usage, UsageError


def test_addition_and_sum():
    a = Usage(100, 20, cache_read_tokens=50, reasoning_tokens=5)
    b = Usage(10, 2)
    total = a + b
    assert (total.input_tokens, total.output_tokens, total.cache_read_tokens, total.requests) == (110, 22, 50, 2)
    assert sum([a, b]) == total
    assert total.total_tokens == 132


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"input_tokens": -1}, "input_tokens must be a non-negative int"),
        ({"output_tokens": 1.5}, "output_tokens must be a non-negative int"),
        ({"input_tokens": True}, "input_tokens must be a non-negative int"),
        ({"input_tokens": "12"}, "input_tokens must be a non-negative int"),
        ({"input_tokens": 10, "cache_read_tokens": 8, "cache_write_tokens": 3}, "input_tokens must include cached"),
        ({"output_tokens": 1, "reasoning_tokens": 2}, "output_tokens must include reasoning"),
        ({"input_tokens": 9, "cache_write_tokens": 2, "cache_write_1h_tokens": 3}, "1-hour writes are part"),
    ],
)
def test_bad_counts_are_a_clear_error(kwargs, words):
    with pytest.raises(UsageError, match=words):
        Usage(**kwargs)


def test_replace_validates():
    u = Usage(10, 5)
    assert u.replace(output_tokens=7).output_tokens == 7
    with pytest.raises(UsageError):
        u.replace(reasoning_tokens=99)
