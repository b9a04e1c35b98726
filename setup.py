"""Installation script of the ``unreid`` distribution (package ``reid``)."""
from pathlib import Path

from setuptools import find_packages, setup

_version = {}
exec((Path(__file__).parent / "reid" / "version.py").read_text(), _version)

setup(
    name="unreid",
    version=_version["__version__"],
    description="Unsupervised and domain-adaptive object re-identification (SpCL and friends)",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["reid", "reid.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "scikit-learn",
        "faiss-cpu",
        "numba",
        "yacs",
        "tensorboard",
        "tqdm",
        "pillow",
    ],
    extras_require={
        "gpu": ["faiss-gpu"],
        "test": ["pytest"],
        "export": ["onnx", "onnxruntime"],
        "plot": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "reid-train=reid.engine.cli:main_train",
            "reid-test=reid.engine.cli:main_test",
            "reid-extract=reid.apps.cli:extract_main",
            "reid-visualize=reid.apps.cli:visualize_main",
            "reid-export=reid.apps.cli:export_main",
            "reid-plot=reid.apps.cli:plot_main",
            "reid-pretrain-videomae=reid.apps.cli:pretrain_main",
        ]
    },
    license="MIT",
)
