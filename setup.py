from setuptools import find_packages, setup

REQUIRES = [
    "tensorflow>=2.18",
    "keras>=3.6",
    "tensorflow-datasets>=4.9",
    # tensorflow-datasets 4.9.10 imports it when downloading but does not require it.
    "importlib_resources",
    "numpy",
    "scikit-learn>=1.6",
    "pandas",
    "matplotlib",
    "tqdm",
    "skops>=0.9",
]

EXTRAS = {
    "distributed": ["dask[distributed]>=2024.1"],
    "parquet": ["pyarrow"],
    "notebooks": ["jupyter", "ipykernel", "nbclient", "nbformat"],
    "gpu": ["tensorflow[and-cuda]>=2.16"],
}
EXTRAS["test"] = sorted(
    set(EXTRAS["distributed"] + EXTRAS["parquet"])
    | {"pytest", "pytest-timeout", "ipykernel", "nbclient", "nbformat"}
)

setup(
    name="keras_bigml",
    version="0.1.0",
    description="Machine learning and image generation for big-data analysis on Keras 3 and scikit-learn",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_bigml", "keras_bigml.*"]),
    python_requires=">=3.10",
    install_requires=REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["keras-bigml=keras_bigml.cli:main"]},
)
