"""Packages for setuptools: one import name, `privet`, over the repository's top-level folders.

pyproject.toml holds everything else; a nested package-dir mapping cannot be written there
with automatic discovery, so the package list is computed here.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "privet": "protos/privet",  # the package itself and the generated protocol code
    "privet.governance": "governance",
    "privet.services": "services",
    "privet.policies": "policies",  # the default policies, as package data
}

setup(
    package_dir=FOLDERS,
    packages=[f"{name}.{sub}" if sub else name for name, folder in FOLDERS.items() for sub in ["", *find_packages(folder)]],
)
