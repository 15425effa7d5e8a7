"""Images larger than memory: shards against PNG class folders, read speed, memory, GAN epochs.

Usage:  python benchmarks/images_at_scale.py [--images 1000000] [--workdir DIR] [--keep]

Writes N 28x28 digits (the MNIST subset's training digits, each copy shifted by
up to 2 pixels) as class folders of PNGs and, with `keras_bigml.workflows.sharding`,
as shards. Then prints, after the CPU:

- images per second read and decoded into float batches of 256: `load_images`
  over the shards against `keras.utils.image_dataset_from_directory` over the
  PNG folders, with the files' pages in the page cache ("cached") and evicted
  with `posix_fadvise(POSIX_FADV_DONTNEED)` ("evicted"); median of interleaved
  runs with their range (target: shards >= 3x both ways). The shard time
  includes `load_images`' size and SHA-256 check of every shard;
- the peak resident memory of a process reading 100k images and all N
  (target: all N at most 1.2x of 100k);
- a GAN epoch's speed on images from the shards against the same images from a
  numpy array in memory (target >= 0.9x).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import common
import numpy as np

BATCH = 256
DATASET_MARKER = "dataset.json"


def cpu_description():
    """The CPU's model name and the flags that decide bfloat16 speed."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f")
    shown = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)
    return f"{model} ({os.cpu_count()} logical CPUs; {shown})"


def shifted_digits(count, seed=0, chunk=50_000):
    """Yield ``(images uint8 (n, 28, 28), labels)`` chunks: MNIST training digits shifted by -2..2 pixels."""
    path = common.require_dataset("mnist-subset.npz")
    with np.load(path) as archive:
        digits, labels = archive["x_train"], archive["y_train"]
    rng = np.random.default_rng(seed)
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    for start in range(0, count, chunk):
        index = np.arange(start, min(start + chunk, count)) % len(digits)
        dy, dx = rng.integers(0, 5, (2, len(index)))
        rows = dy[:, None] + np.arange(28)
        cols = dx[:, None] + np.arange(28)
        images = padded[index[:, None, None], rows[:, :, None], cols[:, None, :]]
        yield images, labels[index]


def write_folders(folder, count, seed):
    """Class folders of PNGs; reused when a previous run wrote the same ones."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    marker = os.path.join(folder, DATASET_MARKER)
    wanted = {"images": count, "seed": seed}
    if os.path.isfile(marker):
        with open(marker) as file:
            if json.load(file) == wanted:
                return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    for label in range(10):
        os.makedirs(os.path.join(folder, str(label)))
    watch = common.Stopwatch()
    number = 0
    with tqdm(total=count, desc="writing PNGs", unit="img") as bar:
        for images, labels in shifted_digits(count, seed):
            # Encoded by TensorFlow in parallel (PIL one by one took 1-9 ms an image on this shared machine).
            pngs = tf.data.Dataset.from_tensor_slices(images[..., None]).map(
                tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
            labels = iter(labels)
            for batch in pngs.as_numpy_iterator():
                for data, label in zip(batch, labels):  # noqa: B905 (labels run on past this batch)
                    with open(os.path.join(folder, str(label), f"{number:07d}.png"), "wb") as file:
                        file.write(data)
                    number += 1
                bar.update(len(batch))
    # The marker is written outside the class folders, beside them, so no reader sees it as data.
    with open(marker, "w") as file:
        json.dump(wanted, file)
    return watch.seconds()


def files_under(folder):
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


def evict(paths):
    """Drop the files' pages from the page cache."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_shards(directory):
    from keras_bigml.data import load_images

    return load_images(directory, batch_size=BATCH, seed=0)


def read_folders(folder):
    import keras

    return keras.utils.image_dataset_from_directory(
        folder, labels="inferred", color_mode="grayscale", image_size=(28, 28), batch_size=BATCH,
        shuffle=True, seed=0, verbose=False,
    )


def images_per_second(build, source):
    """Build the reader and read one epoch; images per second, construction included."""
    watch = common.Stopwatch()
    count = 0
    for batch in build(source):
        images = batch[0] if isinstance(batch, tuple) else batch
        count += int(images.shape[0])
    return count / watch.seconds(), count


MEMORY_PROBE = """
import sys
import tensorflow as tf, keras
reader, source, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
if reader == "shards":
    from keras_bigml.data import load_images
    dataset = load_images(source, batch_size=256, seed=0, limit=limit)
elif reader == "folders":
    dataset = keras.utils.image_dataset_from_directory(
        source, color_mode="grayscale", image_size=(28, 28), batch_size=256, seed=0, verbose=False)
    dataset = dataset.take(-(-limit // 256))
else:
    dataset = []
count = sum(int(b[0].shape[0] if isinstance(b, tuple) else b.shape[0]) for b in dataset)
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(count, peak // 1024)
"""


def peak_memory(reader, source, limit):
    """``(images read, peak resident MB)`` of a fresh process reading ``limit`` images."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    output = subprocess.run([sys.executable, "-c", MEMORY_PROBE, reader, source, str(limit)],
                            capture_output=True, text=True, env=env, check=True).stdout.split()
    return int(output[-2]), int(output[-1])


def gan_epochs(shard_dir, count, repeats, batch_size=64):
    """Median seconds per GAN epoch on ``count`` images from shards and from memory, interleaved."""
    import keras

    from keras_bigml.data import load_images
    from keras_bigml.generative import GAN

    from_shards = load_images(shard_dir, limit=count, batch_size=batch_size, seed=0, drop_remainder=True)
    in_memory = np.concatenate([np.rint(b.numpy() * 255).astype(np.uint8)
                                for b in load_images(shard_dir, limit=count, batch_size=4096, shuffle=False)])
    from_memory = load_images(in_memory, batch_size=batch_size, seed=0, drop_remainder=True)
    runs = {}
    for name, dataset in (("memory", from_memory), ("shards", from_shards)):
        keras.utils.set_random_seed(0)
        gan = GAN(image_shape=(28, 28, 1), latent_dim=64, generator_filters=(64, 32),
                  discriminator_filters=(32, 64), seed=0)
        gan.compile()
        gan.fit(dataset, epochs=1, verbose=0)  # builds and compiles the steps
        runs[name] = (gan, dataset, [])
    for _ in range(repeats):
        for gan, dataset, seconds in runs.values():
            watch = common.Stopwatch()
            gan.fit(dataset, epochs=1, verbose=0)
            seconds.append(watch.seconds())
    return {name: seconds for name, (_, _, seconds) in runs.items()}


def spread(values):
    return f"median {np.median(values):,.0f} (range {min(values):,.0f}-{max(values):,.0f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000, help="how many 28x28 digits to write")
    parser.add_argument("--workdir", help="where the PNG folders and shards go (reused by later runs); "
                        "default: keras_bigml_images_at_scale in the temporary directory",
                        default=os.path.join(tempfile.gettempdir(), "keras_bigml_images_at_scale"))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per reader and cache state")
    parser.add_argument("--gan-images", type=int, default=20_000, help="images per timed GAN epoch")
    parser.add_argument("--keep", action="store_true", help="keep the PNG folders and shards")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.images < 2 or args.repeats < 1 or args.gan_images < 64:
        parser.error("--images must be at least 2, --repeats at least 1, --gan-images at least 64")
    print(f"CPU: {cpu_description()}")
    print(f"images: {args.images:,} 28x28 digits (MNIST subset, shifted up to 2 pixels), batch {BATCH}")

    from keras_bigml.workflows.sharding import shard

    folder = os.path.join(args.workdir, "png")
    shard_dir = os.path.join(args.workdir, "shards")
    os.makedirs(args.workdir, exist_ok=True)
    seconds = write_folders(folder, args.images, args.seed)
    png_files = [p for p in files_under(folder) if p.endswith(".png")]
    png_bytes = sum(os.path.getsize(p) for p in png_files)
    print(f"PNG folders: {len(png_files):,} files, {png_bytes / 1e6:,.0f} MB of data"
          + (f", written in {seconds:.0f} s" if seconds else " (reused)"))
    result = shard(folder, shard_dir, overwrite=True, seed=args.seed)
    print(f"shards: {sum(result.shards.values())} files, {result.bytes / 1e6:,.0f} MB, {result.encoding}, "
          f"written from the PNGs in {result.seconds:.1f} s ({result.images_per_second:,.0f} images/s)")
    shard_files = files_under(shard_dir)

    readers = {"shards": (read_shards, shard_dir, shard_files),
               "image_dataset_from_directory": (read_folders, folder, png_files)}
    speeds = {(name, state): [] for name in readers for state in ("cached", "evicted")}
    for build, source, _ in readers.values():  # warm the page cache and the graphs
        images_per_second(build, source)
    for _ in range(args.repeats):
        for state in ("cached", "evicted"):
            for name, (build, source, paths) in readers.items():
                if state == "evicted":
                    evict(paths)
                speed, count = images_per_second(build, source)
                if count != args.images:
                    raise SystemExit(f"{name} read {count} images, expected {args.images}")
                speeds[name, state].append(speed)
    print("read and decoded, images per second:")
    for state in ("cached", "evicted"):
        shards_speed = np.median(speeds["shards", state])
        folder_speed = np.median(speeds["image_dataset_from_directory", state])
        print(f"  {state:8s} shards {spread(speeds['shards', state])}; image_dataset_from_directory "
              f"{spread(speeds['image_dataset_from_directory', state])}; "
              f"ratio {shards_speed / folder_speed:.1f}x (target >= 3x)")

    small = min(100_000, args.images // 2)
    baseline = peak_memory("none", "", 0)[1]
    print(f"peak resident memory (TensorFlow + Keras imported alone: {baseline:,} MB):")
    for name, source in (("shards", shard_dir), ("folders", folder)):
        few, few_mb = peak_memory(name, source, small)
        all_, all_mb = peak_memory(name, source, args.images)
        print(f"  {name:8s} {few:,} images {few_mb:,} MB; {all_:,} images {all_mb:,} MB; "
              f"ratio {all_mb / few_mb:.2f}x (target <= 1.2x)")

    gan_count = min(args.gan_images, args.images)
    epochs = gan_epochs(shard_dir, gan_count, args.repeats)
    memory_speed = gan_count / np.median(epochs["memory"])
    shard_speed = gan_count / np.median(epochs["shards"])
    print(f"GAN epoch on {gan_count:,} images, images per second: from memory "
          f"{spread([gan_count / s for s in epochs['memory']])}, from shards "
          f"{spread([gan_count / s for s in epochs['shards']])}; ratio {shard_speed / memory_speed:.2f}x "
          f"(target >= 0.9x)")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"total {time.time() - started:.0f} s")
