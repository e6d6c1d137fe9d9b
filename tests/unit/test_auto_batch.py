"""The auto micro-batch search: largest fitting size, never running one predicted to be over the limit."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.train.auto_batch import largest_fitting


def recorder(peak_of):
    """A measure that records the sizes it was asked for."""
    asked: list[int] = []

    def measure(size: int):
        asked.append(size)
        return peak_of(size)
    return measure, asked


def test_linear_peaks_find_the_largest_size_under_the_limit():
    measure, asked = recorder(lambda b: 100 + 10 * b)
    assert largest_fitting(measure, limit=500, cap=1000) == (40, 500)
    # 64 was predicted at 740 > 500, so it never ran; 40 filled the gap between 32 and 64
    assert asked == [1, 2, 4, 8, 16, 32, 40]


def test_the_cap_bounds_the_search():
    measure, asked = recorder(lambda b: b)
    assert largest_fitting(measure, limit=10**9, cap=6) == (6, 6)
    assert asked == [1, 2, 4, 6]


def test_out_of_memory_counts_as_not_fitting():
    measure, asked = recorder(lambda b: None if b >= 6 else 50 * b)
    assert largest_fitting(measure, limit=10**9, cap=64) == (4, 200)
    assert asked == [1, 2, 4, 8, 7]


def test_nothing_fits():
    measure, asked = recorder(lambda b: 1000)
    assert largest_fitting(measure, limit=999, cap=64) is None
    assert asked == [1]


def test_a_gap_guess_that_does_not_fit_keeps_the_last_size_that_did():
    # superlinear peaks: the line through 8 and 16 says 24 fits, the probe says no
    measure, asked = recorder(lambda b: b * b)
    assert largest_fitting(measure, limit=500, cap=64) == (16, 256)
    assert asked[-1] > 16


def test_config_accepts_auto_and_rejects_other_words():
    assert load_config(overrides=["training.batch_size=auto"]).training.batch_size == "auto"
    assert load_config(overrides=["training.batch_size=12"]).training.batch_size == 12
    with pytest.raises(ConfigError, match=r"training\.batch_size = 'big': expected an integer or one of 'auto'"):
        load_config(overrides=["training.batch_size=big"])
    with pytest.raises(ConfigError, match=r"training\.batch_size = 0: must be > 0 or 'auto'"):
        load_config(overrides=["training.batch_size=0"])


def test_auto_with_a_token_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="not used with data.batch_tokens > 0"):
        load_config(overrides=["training.batch_size=auto", "data.batch_tokens=2048"])


def test_resources_keys_are_checked():
    assert load_config(overrides=["resources.max_memory=4096"]).resources.max_memory == 4096
    with pytest.raises(ConfigError, match=r"resources\.max_batch_size = 0: must be > 0"):
        load_config(overrides=["resources.max_batch_size=0"])
