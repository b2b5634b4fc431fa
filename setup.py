"""Builds the one C extension (the Maglev table filler); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shoal.dataplane._maglev",
            sources=["src/shoal/dataplane/_maglev.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Werror"],
        )
    ]
)
