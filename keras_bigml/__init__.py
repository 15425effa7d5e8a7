"""keras_bigml: machine learning and image generation for big-data analysis."""

import os

__version__ = "0.2.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI, AVX512_BF16,
# AVX_VNNI or AMX. On an AMD EPYC with AVX2 only they trained the GAN 1.40x, the VAE 1.11x and
# CycleGAN about 1.4x faster per CPU-second (benchmarks/throughput.py), so keras_bigml asks for
# them before TensorFlow is imported. TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
