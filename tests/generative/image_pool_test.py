import numpy as np
import pytest

from keras_bigml.generative.image_pool import ImagePool


def constant_images(values):
    return np.stack([np.full((2, 2, 1), v, np.float32) for v in values])


def test_pool_fills_first_then_returns_new_or_swapped_images():
    pool = ImagePool((2, 2, 1), pool_size=4, seed=0)
    returned = pool(constant_images([1, 2, 3])).numpy()
    np.testing.assert_array_equal(returned[:, 0, 0, 0], [1, 2, 3])
    assert int(pool.count.numpy()) == 3
    seen_swap, seen_new = False, False
    for batch in range(20):
        values = [10 + 3 * batch + i for i in range(3)]
        count = int(pool.count.numpy())
        before = set(pool.images.numpy()[:count, 0, 0, 0].tolist())
        out = pool(constant_images(values)).numpy()[:, 0, 0, 0]
        assert int(pool.count.numpy()) == 4
        for new, got in zip(values, out):
            # Each image comes back as itself or as an image the pool held.
            assert got == new or got in before | set(values)
            seen_new |= got == new
            seen_swap |= got != new
    assert seen_new and seen_swap
    assert min(pool.images.numpy()[:, 0, 0, 0]) >= 10  # old images were swapped out


def test_pool_of_zero_passes_images_through():
    pool = ImagePool((2, 2, 1), pool_size=0)
    images = constant_images([5, 6])
    np.testing.assert_array_equal(pool(images), images)


def test_same_seed_same_choices_and_config_round_trip():
    first, second = ImagePool((2, 2, 1), 2, seed=4), ImagePool.from_config(ImagePool((2, 2, 1), 2, seed=4).get_config())
    for batch in range(5):
        images = constant_images([batch * 2, batch * 2 + 1])
        np.testing.assert_array_equal(first(images), second(images))


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="pool_size must be 0 or more"):
        ImagePool((2, 2, 1), pool_size=-1)


def test_a_batch_is_handled_image_by_image():
    # With one slot, every swap returns the image stored last: the previous swapped
    # image of the same batch, or what the pool held before the batch.
    pool = ImagePool((2, 2, 1), pool_size=1, seed=3)
    held, swaps = None, 0
    for batch in range(6):
        values = [100 * batch + i for i in range(8)]
        out = pool(constant_images(values)).numpy()[:, 0, 0, 0]
        for new, got in zip(values, out):
            if held is None:  # the first image fills the pool
                assert got == new
            elif got != new:
                assert got == held
                swaps += 1
            else:
                continue
            held = new
        assert pool.images.numpy()[0, 0, 0, 0] == held
    assert 10 < swaps < 38
