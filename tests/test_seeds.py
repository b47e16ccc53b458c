"""The one seed rule: an int >= 0 below 2**64 (numpy's too) or None; anything else named in a ConfigError."""

import numpy as np
import pytest
import torch

from augmentgen._seeds import MAX_SEED, check_seed, seeded_generator
from augmentgen.errors import ConfigError


def test_numpy_integers_seed_like_ints_and_none_draws_fresh_entropy():
    assert torch.equal(seeded_generator(np.int64(3)).get_state(), seeded_generator(3).get_state())
    assert not torch.equal(seeded_generator(None).get_state(), seeded_generator(None).get_state())


@pytest.mark.parametrize("bad", ["0", 1.5, [0], True, -1, MAX_SEED])
def test_a_seed_that_is_no_integer_is_refused_naming_the_argument(bad):
    with pytest.raises(ConfigError, match=r"seed must be an int >= 0 \(or None for fresh randomness\), got "):
        seeded_generator(bad)


def test_check_seed_names_the_flag_and_returns_a_plain_int():
    # training, the subsets and the shards refused a negative seed while eval and the mixers took it
    assert check_seed(np.int64(7)) == 7 and type(check_seed(np.int64(7))) is int
    fresh = seeded_generator(None).initial_seed()  # up to 2**64 - 1: a bank records it, a user passes it back
    assert check_seed(fresh) == fresh and check_seed(MAX_SEED - 1) == MAX_SEED - 1
    with pytest.raises(ConfigError, match=r"^--seed must be an int >= 0 \(it seeds the noise\), got -1; pass one "
                                          r"from 0 to 2\*\*64 - 1, like --seed 0$"):
        check_seed(-1, "--seed", use="it seeds the noise")
    with pytest.raises(ConfigError, match=r"pass one from 0 to 2\*\*63 - 1, like seed=0$"):
        check_seed(2**63, bits=63)

