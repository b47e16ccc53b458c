"""The one seed rule: any integer (numpy's too) or None; anything else named in a ConfigError."""

import numpy as np
import pytest
import torch

from augmentgen._seeds import seeded_generator
from augmentgen.errors import ConfigError


def test_numpy_integers_seed_like_ints_and_none_draws_fresh_entropy():
    assert torch.equal(seeded_generator(np.int64(3)).get_state(), seeded_generator(3).get_state())
    assert not torch.equal(seeded_generator(None).get_state(), seeded_generator(None).get_state())


@pytest.mark.parametrize("bad", ["0", 1.5, [0]])
def test_a_seed_that_is_no_integer_is_refused_naming_the_argument(bad):
    with pytest.raises(ConfigError, match=r"seed must be an int \(or None for fresh randomness\), got "):
        seeded_generator(bad)

