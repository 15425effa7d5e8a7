"""The history of generated images that CycleGAN's discriminators learn from
(Shrivastava et al., 2017; Zhu et al., 2017)."""

import keras
import tensorflow as tf

from keras_bigml.errors import ConfigError
from keras_bigml.generative.seeding import SavedSeedState


@keras.saving.register_keras_serializable(package="keras_bigml")
class ImagePool(SavedSeedState, keras.layers.Layer):
    """A buffer of ``pool_size`` past fakes, queried with each new batch of fakes.

    Image by image: while the pool is filling, the new image is stored and
    returned; afterwards, with probability 1/2 a random stored image is returned
    and replaced by the new one, else the new image is returned. The pool and
    its fill count are weights, so they are saved with the model and restored
    on resume.

    Under a distribution strategy every replica gathers the global batch, runs
    the same draws on it and keeps its own slice of the result, so one and
    several replicas compute the same thing and the pool stays identical on all.

    Parameters
    ----------
    image_shape : (int, int, int)
    pool_size : int
        0 turns the pool off (each batch of fakes is returned as it is).
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> pool = ImagePool((2, 2, 1), pool_size=3, seed=0)
    >>> first = pool(np.zeros((2, 2, 2, 1), "float32"))
    >>> int(pool.count.value), float(np.abs(first).max())
    (2, 0.0)
    """

    def __init__(self, image_shape, pool_size=50, seed=None, **kwargs):
        super().__init__(**kwargs)
        if pool_size < 0:
            raise ConfigError(f"pool_size must be 0 or more, got {pool_size}.")
        self.image_shape = tuple(image_shape)
        self.pool_size = int(pool_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.images = self.add_weight(
            shape=(max(self.pool_size, 1), *self.image_shape), initializer="zeros", dtype="float32",
            trainable=False, autocast=False, aggregation="only_first_replica", name="images",
        )
        self.count = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False,
            aggregation="only_first_replica", name="count",
        )

    def call(self, images: tf.Tensor) -> tf.Tensor:
        images = tf.cast(images, tf.float32)
        if not self.pool_size:
            return images
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return self._query(images)
        everyone = context.all_gather(images, axis=0)
        sizes = context.all_gather(tf.shape(images)[:1], axis=0)
        start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        return self._query(everyone)[start : start + tf.shape(images)[0]]

    def _query(self, images):
        """The image-by-image algorithm, computed for the whole batch at once.

        The first images fill the free slots; after that image ``i`` swaps with
        probability 1/2 with slot ``slots[i]``, whose content is then the image of
        the last earlier swap into the same slot in this batch, or else what the
        pool held.
        """
        n = tf.shape(images)[0]
        swap = keras.random.uniform((n,), seed=self.seed_generator) < 0.5
        slots = keras.random.randint((n,), 0, self.pool_size, seed=self.seed_generator, dtype="int32")
        order = tf.range(n)
        count = self.count.value
        filling = tf.minimum(n, self.pool_size - count)
        pool = tf.tensor_scatter_nd_update(self.images.value, (count + order[:filling])[:, None], images[:filling])
        swapping = tf.logical_and(swap, order >= filling)
        same_slot = tf.logical_and(tf.equal(slots[:, None], slots[None, :]), swapping[None, :])
        earlier = tf.logical_and(same_slot, order[None, :] < order[:, None])
        later = tf.logical_and(same_slot, order[None, :] > order[:, None])
        last_earlier = tf.reduce_max(tf.where(earlier, order[None, :], -1), axis=1)
        held = tf.where(
            (last_earlier >= 0)[:, None, None, None],
            tf.gather(images, tf.maximum(last_earlier, 0)), tf.gather(pool, slots),
        )
        returned = tf.where(swapping[:, None, None, None], held, images)
        final = tf.logical_and(swapping, tf.logical_not(tf.reduce_any(later, axis=1)))
        pool = tf.tensor_scatter_nd_update(
            pool, tf.boolean_mask(slots, final)[:, None], tf.boolean_mask(images, final)
        )
        self.images.assign(pool)
        self.count.assign(count + filling)
        return returned

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(), "image_shape": list(self.image_shape),
            "pool_size": self.pool_size, "seed": self.seed,
        }
