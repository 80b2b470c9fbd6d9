"""Installs the lmk_tf library and the lmk-* console commands.

Exact pins live in requirements.txt (what `make` installs); here the direct
dependencies are pinned to the same versions so `pip install .` alone agrees.
"""

from setuptools import find_packages, setup

COMMANDS = {
    "lmk-info": "pipelines.info:run",
    "lmk-prepare": "pipelines.prepare:run",
    "lmk-train": "pipelines.train:run",
    "lmk-evaluate": "pipelines.evaluate:run",
    "lmk-export": "pipelines.export:run",
    "lmk-predict": "pipelines.predict:run",
    "lmk-serve": "pipelines.serve:run",
    "lmk-client": "pipelines.client:run",
    "lmk-batch": "pipelines.batch:run",
}

setup(
    name="lmk-tf",
    version="0.1.0",
    description="Global-to-local anatomical landmark localization (Noothout et al. 2020) "
    "in TensorFlow/Keras, exported as one SavedModel for TensorFlow Serving.",
    python_requires=">=3.10",
    packages=find_packages(include=["lmk_tf", "lmk_tf.*", "pipelines", "pipelines.*"]),
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tensorflow-serving-api==2.21.0",
        "grpcio==1.85.1",
        "protobuf==6.33.6",
        "numpy==2.4.6",
        "absl-py==2.5.1",
        "pydicom==3.0.2",
        "pylibjpeg==2.1.0",
        "pylibjpeg-libjpeg==2.5.0",
        "pylibjpeg-openjpeg==2.6.0",
        "pylibjpeg-rle==2.2.0",
        "nibabel==5.4.2",
        "SimpleITK==2.5.7",
        "pillow==12.3.0",
        "matplotlib==3.11.2",
        "psutil==7.2.2",
        "tensorboard==2.21.0",
        "apache-beam==2.77.0",
        "prometheus-client==0.26.0",
    ],
    extras_require={"test": ["pytest==9.2.0", "pydicom-data==1.0.0", "import-linter==2.17", "ruff==0.17.6",
                             "kubernetes-validate==1.37.0"]},
    entry_points={
        "console_scripts": [f"{name}={target}" for name, target in COMMANDS.items()]
    },
)
