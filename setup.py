import re
from pathlib import Path

from setuptools import setup

here = Path(__file__).parent
version = re.search(
    r'^__version__ = "([^"]+)"', (here / "thor" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="thor",
    version=version,
    description="Evented I/O for building fast, correct HTTP intermediaries",
    long_description=(here / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    author="thor developers",
    license="MIT",
    url="https://github.com/mnot/thor/",
    packages=["thor", "thor.http", "thor.http.h2"],
    package_data={"thor": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: MIT License",
        "Operating System :: POSIX",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Internet :: WWW/HTTP",
        "Topic :: Internet :: Proxy Servers",
        "Topic :: System :: Networking",
    ],
)
